"""Confidence on any family with verifiable problems: traces sampled on its problems, the
answer forced by the trace's own suffix."""

from __future__ import annotations

import json

import pytest

import postlens as pl
from postlens.probes.confidence.result import ConfidenceConfig
from postlens.probes.confidence.traces import ANSWER_SUFFIX, split_answer
from postlens.probes.confidence.trajectory import Trace, TrajectoryConfig, behavioural_trajectories
from postlens.testing import save_tiny_model


@pytest.mark.parametrize(
    ("reply", "reasoning"),
    [
        ("8 + 14 = 22", "8 + 14 ="),
        ("It is 3.5 I think.", "It is"),
        ("none", "none"),
        ("-4", ""),
    ],  # fmt: skip
)
def test_the_reasoning_is_the_reply_before_its_last_number(reply, reasoning):
    assert split_answer(reply) == reasoning


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    return [str(save_tiny_model(root / n, "llama", seed=i)) for i, n in enumerate(("b", "p"))]


def test_a_trace_forces_its_answer_with_its_own_suffix(pair):
    fam = pl.load(*pair)
    # The verifier accepts exactly the continuations that follow the generic suffix.
    says_suffix = lambda text: text.startswith(ANSWER_SUFFIX)  # noqa: E731
    traces = [
        Trace("ab", "cd ef", says_suffix, suffix=ANSWER_SUFFIX),
        Trace("ab", "cd", says_suffix),
    ]
    cfg = TrajectoryConfig(n_samples=2, max_new_tokens=2)
    scores = behavioural_trajectories(fam["post"].post, None, traces, cfg).scores
    assert scores[0].tolist() == [1.0] * 6 and scores[1].tolist() == [0.0] * 6


def test_confidence_runs_on_any_family_with_problems(pair, tmp_path):
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps({"prompt": f"{i}+1=", "answer": i + 1}) + "\n"
                                for i in range(4)))  # fmt: skip
    fam = pl.load(*pair)
    cfg = ConfidenceConfig(pl.SampleConfig(limit=3, max_new_tokens=6),
                           TrajectoryConfig(n_samples=2, max_new_tokens=3))  # fmt: skip
    res = fam.confidence(str(problems), cfg)
    assert sorted(res.models) == ["base", "post"] and res["post"].n_traces == 3
    with pytest.raises(pl.InputFileError, match="verifiable problems or reasoning traces"):
        fam.confidence(config=cfg)
