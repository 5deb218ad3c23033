"""Fork substitution decoding: τ = −∞ / +∞ give the post model / the base exactly."""

from __future__ import annotations

import math

import pytest

import postlens as pl
from postlens.diffs.substitution import SubstitutionConfig, substitution_decoding
from postlens.generation import sample_completions
from postlens.pair import ModelPair
from postlens.testing import tiny_model

PROMPTS = ["1+2=", "ab+c"]
VERIFIERS = [lambda c: "1" in c, lambda c: "a" in c]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_infinite_thresholds_give_each_model_exactly(temperature):
    from postlens.decoding import two_model_decode
    from postlens.diffs.substitution import by_entropy

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
    cfg = SubstitutionConfig(taus=(-math.inf, 3.0, math.inf), limit=2, n=2, max_new_tokens=8)
    res = substitution_decoding(base, post, tok, PROMPTS, VERIFIERS, cfg)
    rows = {(r.direction, r.tau): r for r in res.rows}
    assert rows[("base→post", -math.inf)].share == 1.0
    assert rows[("base→post", math.inf)].share == 0.0
    mid = rows[("base→post", 3.0)]
    assert 0.0 <= mid.share <= 1.0 and mid.control_share is not None
    back = pl.Result.from_json(res.to_json())
    assert back.summary() == res.summary() and back.rows == res.rows
    assert res.plot().layout.title.text == "Fork substitution decoding"
