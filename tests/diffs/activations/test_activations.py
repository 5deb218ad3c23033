"""Activation shifts and patching on planted differences, checked against a plain HF forward."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from postlens import ModelPair
from postlens.diffs.activations.compute import ActivationConfig, activation_shifts
from postlens.diffs.forks.compute import given_sequences

TEXTS = [("q: 12+34=?", " 46 done"), ("hello", " world, again"), ("abc", " def ghi")]
# These tests pin exact patching and the logit lens at every position (the defaults are
# attribution patching and a sample of positions: tests/diffs/activations/test_attribution.py).
EXACT = ActivationConfig(patching="exact", lens_positions=None)


@pytest.mark.parametrize("backend", ["nnsight", "transformer_lens"])
def test_shift_is_zero_before_the_changed_layer_and_patching_locates_it(late_change, backend):
    base, post = late_change
    pair = ModelPair.load(str(base), str(post), backend=backend)
    result = activation_shifts(pair, given_sequences(pair, TEXTS), EXACT, progress=False)
    first, *rest = result.layers
    assert first.rel_norm_mean == 0.0 and first.cosine_mean == pytest.approx(1.0)
    assert first.logit_lens_kl == pytest.approx(0.0, abs=1e-7)
    assert first.patch_recovered == pytest.approx(0.0, abs=1e-6)
    assert all(layer.rel_norm_mean > 0 for layer in rest)
    # Final norm and unembedding are unchanged, so patching the last layer recovers everything.
    assert rest[-1].patch_recovered == pytest.approx(1.0, abs=1e-5)
    assert result.output_kl > 0 and result.parting_layer() in (1, 2)
    assert rest[-1].logit_lens_kl == pytest.approx(result.output_kl, rel=1e-4)


def test_cosine_and_relative_norm_match_hidden_states(late_change):
    base, post = late_change
    pair = ModelPair.load(str(base), str(post), backend="nnsight")
    seqs = given_sequences(pair, TEXTS[:1])
    result = activation_shifts(pair, seqs, EXACT, progress=False)
    ids = torch.tensor([seqs[0].prompt_ids + seqs[0].completion_ids])
    with torch.no_grad():
        hb = AutoModelForCausalLM.from_pretrained(base)(
            ids, output_hidden_states=True
        ).hidden_states
        hp = AutoModelForCausalLM.from_pretrained(post)(
            ids, output_hidden_states=True
        ).hidden_states
    for i, layer in enumerate(result.layers[:-1]):  # the last hidden state is after the final norm
        cos = torch.nn.functional.cosine_similarity(hb[i + 1], hp[i + 1], dim=-1).mean()
        rel = ((hp[i + 1] - hb[i + 1]).norm(dim=-1) / hb[i + 1].norm(dim=-1)).mean()
        assert layer.cosine_mean == pytest.approx(float(cos), abs=1e-5)
        assert layer.rel_norm_mean == pytest.approx(float(rel), abs=1e-5)
    assert set(result.layers[1].by_type) == {"prompt", "completion"}
    n = result.layers[1].by_type
    assert n["prompt"]["n"] + n["completion"]["n"] == result.n_positions


def test_identical_models(tiny_dirs):
    path = str(tiny_dirs["gpt2"])
    pair = ModelPair.load(path, path, backend="nnsight")
    result = activation_shifts(pair, given_sequences(pair, TEXTS), EXACT, progress=False)
    assert all(x.cosine_mean == pytest.approx(1.0) and x.rel_norm_mean == 0 for x in result.layers)
    assert result.output_kl == pytest.approx(0.0, abs=1e-7)
    assert all(x.patch_recovered is None for x in result.layers)
    data = json.loads(json.dumps(result.to_json()))
    assert {"layer", "cosine_mean", "rel_norm_mean", "logit_lens_kl", "patch_recovered"} <= set(
        data["layers"][0]
    )


@pytest.mark.parametrize("patching", ["attribution", "exact"])
def test_fused_kernels_give_the_eager_figures(late_change, patching):
    """`compile=True` (the default on large corpora) changes nothing but float32 rounding."""
    base, post = late_change
    pair = ModelPair.load(str(base), str(post), backend="nnsight")
    seqs = given_sequences(pair, TEXTS)
    runs = [
        activation_shifts(
            pair, seqs, ActivationConfig(patching=patching, compile=c, lens_positions=3), False
        )
        for c in (False, True)
    ]
    eager, fused = (r.to_frame() for r in runs)
    assert runs[1].output_kl == pytest.approx(runs[0].output_kl, rel=1e-5)
    for column in ("logit_lens_kl", "cosine_mean"):
        assert fused[column].tolist() == pytest.approx(eager[column].tolist(), rel=1e-4, abs=1e-7)
    # Attribution's recovery is 1 − M(α)/M(0) on an interpolated curve: rounding shows more.
    assert fused["patch_recovered"].tolist() == pytest.approx(
        eager["patch_recovered"].tolist(), abs=1e-4
    )
