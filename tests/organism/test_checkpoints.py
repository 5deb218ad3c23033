"""The shipped organism loads through ModelPair on both backends and behaves as its card says."""

from __future__ import annotations

import pytest

from postlens import ModelPair
from postlens.organism.task import classify_style, make_problems, verify
from postlens.organism.train import HELD_OUT_SEED


@pytest.mark.parametrize("backend", ["transformer_lens", "nnsight"])
def test_organism_pair_loads_on_both_backends(backend):
    pair = ModelPair.load("organism:base", "organism:rl", backend=backend)
    assert pair.n_layers == 4 and pair.d_model == 128
    batch = pair.tokenize(["Q: 347+285=?\n"])
    out = pair.run("post", batch, hooks=["blocks.3.hook_resid_post"])
    assert out.logits.shape[-1] == len(pair.tokenizer)


def test_children_solve_held_out_problems_carefully():
    family = ModelPair.load_family(
        "organism:base", {"sft": "organism:sft", "rl": "organism:rl"}, "nnsight"
    )
    problems = make_problems(12, HELD_OUT_SEED)
    for child, pair in family.items():
        samples = pair.generate(
            "post", [p.prompt for p in problems], max_new_tokens=100, temperature=0
        )
        right = sum(verify(s.completion, p) for s, p in zip(samples, problems, strict=True))
        assert right >= 10, f"{child} solved only {right}/12 held-out problems greedily"
        assert sum(classify_style(s.completion) == "careful" for s in samples) >= 10
