"""Fork tokens against a plain `transformers` forward, on planted differences."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from postlens import ModelPair
from postlens.diffs.forks.compute import (
    ForkConfig,
    Sequence,
    given_sequences,
    sample_sequences,
    score_forks,
)
from postlens.results.protocol import Result
from postlens.testing import save_model, tiny_model

PROMPTS = ["q: 12+34=?", "hello world", "abc abc abc"]


@pytest.fixture(scope="module")
def favoured_pair(tmp_path_factory):
    """A base and a post model whose unembedding favours one token ('7')."""
    root = tmp_path_factory.mktemp("forks")
    model, tok = tiny_model("llama", seed=0)
    base = save_model(model, tok, root / "base")
    token = tok.convert_tokens_to_ids("7")
    with torch.no_grad():
        model.lm_head.weight[token] += (
            0.6 * model.lm_head.weight.norm(dim=1).mean() * torch.randn(32)
        )
    post = save_model(model, tok, root / "post")
    return base, post


def _reference(path, seqs):
    """Log-probabilities at the scored positions from a plain HF forward, one sequence at a time."""
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    out = []
    for s in seqs:
        ids = torch.tensor([s.prompt_ids + s.completion_ids])
        with torch.no_grad():
            logits = model(ids).logits[0]
        out.append(torch.log_softmax(logits[len(s.prompt_ids) - 1 : ids.shape[1] - 1].double(), -1))
    return torch.cat(out)


@pytest.mark.parametrize("backend", ["nnsight", "transformer_lens"])
@pytest.mark.parametrize("split", [True, False], ids=["scored-rows-unembedded", "full-logits"])
def test_forks_are_exactly_where_plain_argmaxes_differ(favoured_pair, backend, split, monkeypatch):
    base, post = favoured_pair
    pair = ModelPair.load(str(base), str(post), backend=backend)
    if not split:  # the path for models whose unembedding cannot be split off
        for which in ("base", "post"):
            monkeypatch.setattr(pair[which], "final_hidden", lambda *a, **k: None)
    seqs = sample_sequences(pair, PROMPTS, n=3, max_new_tokens=12, seed=0, source="post")
    result = score_forks(pair, seqs, ForkConfig(js_threshold=0.69, batch_size=4), progress=False)
    lb, lp = _reference(base, seqs), _reference(post, seqs)
    c = result.columns
    differ = (lb.argmax(-1) != lp.argmax(-1)).numpy()
    assert 0 < differ.sum() < differ.size, "the planted difference should fork some positions only"
    np.testing.assert_array_equal(c["argmax_base"] != c["argmax_post"], differ)
    np.testing.assert_array_equal(result.is_fork, differ)
    pb, pp = lb.exp(), lp.exp()
    np.testing.assert_allclose(c["entropy_base"], -(pb * lb).sum(-1).numpy(), atol=1e-4)
    np.testing.assert_allclose(c["kl"], (pp * (lp - lb)).sum(-1).numpy(), atol=1e-4)
    m = 0.5 * (pb + pp)
    js = 0.5 * (pb * (lb - m.log())).sum(-1) + 0.5 * (pp * (lp - m.log())).sum(-1)
    np.testing.assert_allclose(c["js"], js.numpy(), atol=1e-4)
    chosen = lb.gather(-1, lp.argmax(-1, keepdim=True))
    ranks = (lb > chosen).sum(-1) + 1
    np.testing.assert_array_equal(c["post_rank_in_base"], ranks.numpy())
    s = result.summary()
    assert s.agreement == pytest.approx(1 - differ.mean())
    assert s.topk_coverage[5] == s.top5_coverage
    assert s.top5_coverage == pytest.approx((ranks.numpy()[differ] <= 5).mean())
    assert s.n_positions == sum(len(q.completion_ids) for q in seqs)


def test_identical_models_agree_everywhere(tiny_dirs):
    path = str(tiny_dirs["gpt2"])
    pair = ModelPair.load(path, path, backend="nnsight")
    seqs = sample_sequences(pair, PROMPTS, n=2, max_new_tokens=8, seed=1)
    s = score_forks(pair, seqs, progress=False).summary()
    assert s.agreement == 1.0 and s.n_forks == 0
    assert abs(s.mean_kl) < 1e-6 and s.mean_entropy_forks is None


def test_positions_are_counted_in_completion_tokens(favoured_pair):
    base, post = favoured_pair
    pair = ModelPair.load(str(base), str(post), backend="nnsight")
    seqs = given_sequences(pair, [("q: 1+2=?", " 3 done"), ("ab", "cdef")])
    result = score_forks(pair, seqs, progress=False)
    frame = result.to_frame()
    assert frame.groupby("seq")["pos"].apply(list).tolist() == [list(range(7)), list(range(4))]
    assert "".join(frame[frame.seq == 0]["token"]) == " 3 done"
    data = json.loads(json.dumps(result.to_json()))
    assert {"kind", "summary", "forks", "positions", "sequences", "tokens"} <= set(data)
    summary = data["summary"]
    assert {"n_sequences", "n_positions", "agreement", "topk_coverage", "mean_entropy_all"} <= set(
        summary
    )
    assert set(summary["topk_coverage"]) == {str(k) for k in range(1, 11)}
    again = Result.from_json(data)  # every position's figures and tokens come back exactly
    assert again.summary() == result.summary() and again.to_frame().equals(frame)
    expected = frame[frame["fork"]].sort_values("kl", ascending=False).reset_index(drop=True)
    assert result.forks().equals(expected)  # the fork rows of the full frame, most divergent first
    view = result.token_view()
    assert len(view[0]["tokens"]) == 7 and len(view[0]["tokens"][0]["top_base"]) == 5


def test_long_sequences_are_truncated_with_a_warning(favoured_pair, caplog):
    base, post = favoured_pair
    pair = ModelPair.load(str(base), str(post), backend="nnsight")
    seqs = [Sequence([1] + [5] * 100, [6] * 100)]
    result = score_forks(pair, seqs, progress=False)
    assert result.summary().n_positions == 128 - 101
    assert "1 sequence(s) longer than the context (128 tokens) were truncated" in caplog.text


def test_config_validation():
    with pytest.raises(ValueError, match="js_threshold"):
        ForkConfig(js_threshold=2.0)


def test_long_prompts_are_cut_before_sampling(tiny_dirs, caplog):
    path = str(tiny_dirs["gpt2"])  # learned positions: a too-long prompt would fail outright
    pair = ModelPair.load(path, path, backend="nnsight")
    seqs = sample_sequences(pair, ["ab " * 60, "q"], n=1, max_new_tokens=8, seed=0)
    assert len(seqs) == 2 and len(seqs[0].prompt_ids) <= 120
    assert "1 prompt(s) longer than the 120 tokens" in caplog.text
