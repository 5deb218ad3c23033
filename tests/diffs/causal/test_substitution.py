"""Fork substitution decoding: τ = −∞ / +∞ give the post model / the base exactly."""

from __future__ import annotations

import math

import pytest

import postlens as pl
from postlens.diffs.causal.substitution import SubstitutionConfig, substitution_decoding
from postlens.pair import ModelPair
from postlens.sampling.generation import sample_completions
from postlens.testing import build_tokenizer, save_model, tiny_model

PROMPTS = ["1+2=", "ab+c"]
VERIFIERS = [lambda c: "1" in c, lambda c: "a" in c]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_infinite_thresholds_give_each_model_exactly(temperature):
    from postlens.diffs.causal.substitution import by_entropy
    from postlens.sampling.decoding import two_model_decode

    base, tok = tiny_model(seed=0)
    post, _ = tiny_model(seed=1)
    pair = ModelPair.from_models(base, post, tok)
    kw = {"n": 3, "max_new_tokens": 10, "temperature": temperature, "seed": 5}
    want_post = sample_completions(pair.post, tok, PROMPTS, **kw)
    want_base = sample_completions(pair.base, tok, PROMPTS, **kw)
    for driver, helper in ((pair.base, pair.post), (pair.post, pair.base)):
        for tau, want in ((-math.inf, want_post), (math.inf, want_base)):
            if driver is pair.post:  # the reverse: helper is the base
                want = want_base if tau == -math.inf else want_post
            got, flags = two_model_decode(driver, helper, tok, PROMPTS, by_entropy(tau), **kw)
            assert [s.completion_ids for s in got] == [s.completion_ids for s in want]
            assert all(all(f) if tau < 0 else not any(f) for f in flags)


def test_shares_and_result_round_trip():
    base, tok = tiny_model(seed=0)
    post, _ = tiny_model(seed=1)
    cfg = SubstitutionConfig(
        taus=(-math.inf, 3.0, math.inf), sample=pl.SampleConfig(n=2, limit=2, max_new_tokens=8)
    )
    res = substitution_decoding(base, post, tok, PROMPTS, VERIFIERS, cfg)
    rows = {(r.direction, r.tau): r for r in res.rows}
    assert rows[("base→post", -math.inf)].share == 1.0
    assert rows[("base→post", math.inf)].share == 0.0
    mid = rows[("base→post", 3.0)]
    assert 0.0 <= mid.share <= 1.0 and mid.control_share is not None
    back = pl.Result.from_json(res.to_json())
    assert back.summary() == res.summary() and back.rows == res.rows
    assert res.plot().layout.title.text == "Fork substitution decoding"


def test_family_figure_has_every_childs_traces():
    from postlens.results.family import ByChild

    base, tok = tiny_model(seed=0)
    post, _ = tiny_model(seed=1)
    cfg = SubstitutionConfig(
        taus=(-math.inf, 3.0, math.inf), sample=pl.SampleConfig(n=1, limit=2, max_new_tokens=4)
    )
    res = substitution_decoding(base, post, tok, PROMPTS, VERIFIERS, cfg)
    one = res.plot()
    fig = ByChild("substitution", {"sft": res, "rl": res}).plot()
    assert len(fig.data) == 2 * len(one.data)
    names = [t.name for t in fig.data]
    assert all(n.startswith(("sft, ", "rl, ")) for n in names) and len(set(names)) == len(names)
    # each child's traces keep their subplot: pass@1 on the left, the share on the right
    assert [t.xaxis for t in fig.data] == [t.xaxis for t in one.data] * 2


def _extra_id_family(root):
    """A base and a child with one id more (50, ``<|im_end|>``, the child's eos)."""
    base, tok = tiny_model(seed=0)
    child, _ = tiny_model(seed=1, vocab_size=len(tok) + 1)
    child_tok = build_tokenizer()
    child_tok.add_special_tokens({"eos_token": "<|im_end|>"})
    save_model(base, tok, root / "base")
    save_model(child, child_tok, root / "child")
    return pl.load(str(root / "base"), str(root / "child"))


def test_a_child_with_an_extra_id_decodes_over_the_shared_ids(tmp_path):
    from postlens.diffs.causal.substitution import by_entropy, on_shared_ids
    from postlens.sampling.decoding import two_model_decode

    fam = _extra_id_family(tmp_path)
    pair = fam.pair
    assert pair.tokens.vocab_size == (50, 51)
    records = [pl.PromptRecord("1+2=", answer="3"), pl.PromptRecord("2+2=", answer="4")]
    cfg = SubstitutionConfig(
        taus=(-math.inf, 1.0, math.inf), sample=pl.SampleConfig(n=2, limit=2, max_new_tokens=8)
    )
    rows = {(r.direction, r.tau): r for r in fam.substitute(records, cfg)["post"].rows}
    assert rows[("base→post", -math.inf)].share == 1.0 and rows[("post→base", math.inf)].share == 0
    kw = {"n": 2, "max_new_tokens": 8, "seed": 3}
    for tau in (-math.inf, 1.0):  # every token sampled is one both models can read
        got, _ = two_model_decode(pair.base, pair.post, pair.tokenizer, PROMPTS,
                                  on_shared_ids(by_entropy(tau), pair.tokens), **kw)  # fmt: skip
        assert all(i < 50 for s in got for i in s.completion_ids)
    # the base alone is still the base exactly (its ids are all shared)
    alone, _ = two_model_decode(pair.base, pair.post, pair.tokenizer, PROMPTS,
                                on_shared_ids(by_entropy(math.inf), pair.tokens), **kw)  # fmt: skip
    want = sample_completions(pair.base, pair.tokenizer, PROMPTS, **kw)
    assert [s.completion_ids for s in alone] == [s.completion_ids for s in want]
