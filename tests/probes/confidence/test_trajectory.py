"""Behavioural trajectories on a case with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from postlens.backends.base import Backend
from postlens.probes.confidence.trajectory import (
    Trace,
    TrajectoryConfig,
    behavioural_trajectories,
    cut_points,
)
from postlens.testing import tiny_model


class EchoBackend(Backend):
    """Continues every input with the last token before the answer-forcing suffix."""

    name = "echo"

    def __init__(self, suffix_len: int) -> None:
        model, tok = tiny_model("llama")
        super().__init__(model, tok)
        self.suffix_len = suffix_len

    def run(self, *args, **kwargs):  # pragma: no cover - not used here
        raise NotImplementedError

    def generate(self, input_ids, attention_mask=None, **kwargs):
        last = input_ids[:, -self.suffix_len - 1 : -self.suffix_len]
        return torch.cat(
            [input_ids, last, torch.full_like(last, self.tokenizer.eos_token_id)], dim=1
        )


@pytest.mark.parametrize(("right_from", "expected_oc"), [(0, 0.0), (3, -0.9), (5, -0.5), (6, 0.0)])
def test_verifier_right_from_cut_j(right_from, expected_oc):
    cfg = TrajectoryConfig(n_cuts=5, n_samples=3, max_new_tokens=2)
    _, tok = tiny_model("llama")
    suffix_len = len(tok(cfg.suffix, add_special_tokens=False).input_ids)
    backend = EchoBackend(suffix_len)
    # Cuts keep 0, 2, 4, 6, 8, 10 reasoning characters: the echoed character identifies the cut.
    echoed = ["?", "b", "d", "f", "h", "j"]
    passing = set(echoed[right_from:])
    trace = Trace(
        "q: ?", "abcdefghij", verifier=lambda text: text.strip()[-1:] in passing, label="t"
    )
    result = behavioural_trajectories(backend, backend.tokenizer, [trace, trace], cfg)
    expected = np.array([[1.0 if k >= right_from else 0.0 for k in range(6)]] * 2)
    np.testing.assert_array_equal(result.scores, expected)
    assert result.overconfidence == pytest.approx([expected_oc] * 2)
    assert result.by_label()["t"]["n"] == 2


def test_cut_points_keep_fractions_of_the_reasoning():
    _, tok = tiny_model("llama")
    cuts = cut_points(tok, Trace("ab", "0123456789", lambda s: True), n_cuts=5)
    prompt_len = len(tok("ab").input_ids)
    assert [n - prompt_len for _, n in cuts] == [0, 2, 4, 6, 8, 10]
    assert cuts[3][0] == "ab012345"


def test_config_validation():
    with pytest.raises(ValueError):
        TrajectoryConfig(n_cuts=0)
    assert TrajectoryConfig().weights.tolist() == pytest.approx([0.5, 0.3, 0.1, -0.1, -0.3, -0.5])


def test_hand_computed_partial_scores_and_frame():
    """A verifier right on 2 of 3 samples at one cut: score 2/3 there, overconfidence by hand."""
    cfg = TrajectoryConfig(n_cuts=2, n_samples=3, max_new_tokens=2, temperature=0)
    _, tok = tiny_model("llama")
    backend = EchoBackend(len(tok(cfg.suffix, add_special_tokens=False).input_ids))
    calls = {"n": 0}

    def verifier(text: str) -> bool:  # cut 0: always wrong; cut 1: 2 of 3; cut 2: always right
        calls["n"] += 1
        return {"?": False, "c": calls["n"] % 3 != 0, "f": True}[text.strip()[-1]]

    trace = Trace("q: ?", "abcdef", verifier, label="x", correct=True)
    result = behavioural_trajectories(backend, None, [trace], cfg)
    np.testing.assert_allclose(result.scores, [[0.0, 2 / 3, 1.0]])
    # w = linspace(0.5, -0.5, 3) = [0.5, 0, -0.5]
    assert result.overconfidence[0] == pytest.approx(-0.5)
    assert result.correct.tolist() == [True]
    frame = result.to_frame()
    assert list(frame.columns) == ["trace", "label", "cut", "score", "overconfidence"]
    assert frame["cut"].tolist() == [0.0, 0.5, 1.0]
    assert "overconfidence -0.500" in result._repr_html_()
    assert result.to_json()["by_label"]["x"]["n"] == 1


@pytest.mark.parametrize("backend_name", ["nnsight", "transformer_lens"])
def test_real_backends_are_seeded_and_agree(tiny_dirs, backend_name):
    from postlens import ModelPair

    path = str(tiny_dirs["llama"])
    pair = ModelPair.load(path, path, backend=backend_name)
    traces = [Trace(f"q: {i}+1=?", " abcdef", lambda t: "1" in t) for i in range(3)]
    cfg = TrajectoryConfig(n_cuts=2, n_samples=4, max_new_tokens=3, seed=7)
    first = behavioural_trajectories(pair.post, None, traces, cfg)
    again = behavioural_trajectories(pair.post, pair.tokenizer, traces, cfg)
    bare = behavioural_trajectories(pair.post.hf_model, pair.tokenizer, traces, cfg)
    assert first.scores.shape == (3, 3)
    np.testing.assert_array_equal(first.scores, again.scores)
    np.testing.assert_array_equal(first.scores, bare.scores)  # same HF model, same seed
    with pytest.raises(ValueError, match="tokenizer"):
        behavioural_trajectories(pair.post.hf_model, None, traces, cfg)
