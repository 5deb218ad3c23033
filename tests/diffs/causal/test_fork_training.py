"""Fork-targeted training on tiny models: it moves θ toward the child at the forks only."""

from __future__ import annotations

import torch
from typer.testing import CliRunner

import postlens as pl
from postlens.data.sequences import Sequence
from postlens.diffs.causal.fork_training import (
    ForkTrainConfig,
    fork_positions,
    fork_train_pair,
    scorable,
    train_at,
)
from postlens.diffs.forks.compute import sample_sequences
from postlens.pair import ModelPair
from postlens.testing import build_tokenizer, save_model, tiny_model

PROMPTS = ["ab + cd = ?\n", "q: 12+3\n", "1+2="]


def _pair():
    base, tok = tiny_model(seed=0)
    post, _ = tiny_model(seed=1)
    return ModelPair.from_models(base, post, tok)


def test_training_at_the_forks_raises_agreement_and_zero_steps_is_the_base():
    pair = _pair()
    seqs = sample_sequences(pair, PROMPTS, n=2, max_new_tokens=8, seed=0)
    forks, every = fork_positions(pair, seqs)
    assert 0 < forks.shape[0] <= every.shape[0]
    cfg = ForkTrainConfig(steps=30, lr=1e-2)
    theta, stats = train_at(pair.base.hf_model, pair.post.hf_model, pair, seqs, forks, cfg)
    assert stats["agreement_after"] > stats["agreement_before"]
    assert stats["loss_after"] < stats["loss_before"]
    same, zero = train_at(pair.base.hf_model, pair.post.hf_model, pair, seqs, forks,
                          ForkTrainConfig(steps=0))  # fmt: skip
    assert zero["agreement_after"] == zero["agreement_before"]
    for a, b in zip(same.parameters(), pair.base.hf_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_zero_steps_recovers_nothing_and_the_result_round_trips():
    pair = _pair()
    verifiers = [lambda c: "1" in c] * len(PROMPTS)
    cfg = ForkTrainConfig(
        steps=0, seeds=(0,), n_eval=2, sample=pl.SampleConfig(n=1, limit=16, max_new_tokens=6)
    )
    res = fork_train_pair(pair, PROMPTS, PROMPTS, verifiers, cfg)
    assert [r.pass_at_1 for r in res.rows] == [res.base_pass_at_1] * 2
    assert all(r.recovered in (0.0, None) for r in res.rows)
    back = pl.Result.from_json(res.to_json())
    assert back.summary() == res.summary() and back.rows == res.rows
    res.plot()


def test_each_seed_is_a_replicate_with_its_own_training_samples():
    pair = _pair()
    verifiers = [lambda c: "1" in c] * len(PROMPTS)
    cfg = ForkTrainConfig(
        steps=3,
        lr=1e-2,
        seeds=(0, 1),
        n_eval=2,
        sample=pl.SampleConfig(n=2, limit=16, max_new_tokens=6),
    )
    both = fork_train_pair(pair, PROMPTS, PROMPTS, verifiers, cfg)
    alone = fork_train_pair(pair, PROMPTS, PROMPTS, verifiers, ForkTrainConfig(steps=3, lr=1e-2, seeds=(1,), n_eval=2, sample=pl.SampleConfig(n=2, limit=16, max_new_tokens=6)))  # fmt: skip
    assert [r for r in both.rows if r.seed == 1] == alone.rows  # seed 1 alone, as in a pair
    assert len(both.settings["n_train_sequences"]) == 2
    fork_rows = [r for r in both.rows if r.positions == "fork"]
    # Different training samples: the fork arm differs between seeds (here in its forks).
    assert fork_rows[0].n_positions != fork_rows[1].n_positions or (
        fork_rows[0].loss_before != fork_rows[1].loss_before
    )


def test_fork_train_command(tmp_path):
    a, tok = tiny_model(seed=0)
    b, _ = tiny_model(seed=1)
    paths = [str(save_model(m, tok, tmp_path / n)) for m, n in ((a, "base"), (b, "child"))]
    problems = tmp_path / "p.jsonl"
    problems.write_text('{"prompt": "1+2=", "answer": "3"}\n{"prompt": "2+2=", "answer": "4"}\n')
    from postlens.cli import app

    out = CliRunner().invoke(app, ["fork-train", *paths, "--prompts", str(problems), "--limit", "1",
                                   "--train", "1", "--n", "1", "--n-eval", "1", "--steps", "1",
                                   "--seed-run", "0", "--max-new-tokens", "4",
                                   "--json", str(tmp_path / "t.json")])  # fmt: skip
    assert out.exit_code == 0, out.output
    res = pl.load_result(tmp_path / "t.json")["post"]
    assert [r.positions for r in res.rows] == ["fork", "random"]


def test_a_child_with_an_extra_id_trains_on_the_shared_ids(tmp_path):
    base, tok = tiny_model(seed=0)
    child, _ = tiny_model(seed=1, vocab_size=len(tok) + 1)
    child_tok = build_tokenizer()
    child_tok.add_special_tokens({"eos_token": "<|im_end|>"})  # id 50, which the base lacks
    save_model(base, tok, tmp_path / "base")
    save_model(child, child_tok, tmp_path / "child")
    fam = pl.load(str(tmp_path / "base"), str(tmp_path / "child"))
    pair = fam.pair
    prompt = pair.tokenizer("1+2=").input_ids
    # The child's samples may hold its own id: cut there, and a sequence cut to nothing is
    # dropped, so that the fork positions index the sequences trained on.
    seqs = scorable(pair, [Sequence(prompt, [50, 6, 7]), Sequence(prompt, [6, 7, 50, 8]),
                           Sequence(prompt, [8, 9, 10])])  # fmt: skip
    assert [s.completion_ids for s in seqs] == [[6, 7], [8, 9, 10]]
    forks, every = fork_positions(pair, seqs)
    assert every.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [1, 2]]
    theta, stats = train_at(pair.base.hf_model, pair.post.hf_model, pair, seqs, every,
                            ForkTrainConfig(steps=5, lr=1e-3))  # fmt: skip
    assert stats["loss_after"] < stats["loss_before"]  # KL over the 50 shared ids, finite
    records = [pl.PromptRecord("1+2=", answer="3"), pl.PromptRecord("2+2=", answer="4")]
    cfg = ForkTrainConfig(
        steps=1,
        seeds=(0,),
        train=1,
        n_eval=1,
        sample=pl.SampleConfig(n=2, limit=1, max_new_tokens=6),
    )
    res = fam.fork_train(records, cfg)["post"]
    assert [r.positions for r in res.rows] == ["fork", "random"]
