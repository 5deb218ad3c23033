"""pass@k curves: the estimator, and sampling + verification end to end."""

from __future__ import annotations

import itertools
import json

import pytest

from postlens import ModelPair
from postlens.diffs.passk.compute import (
    PassAtKResult,
    PassKConfig,
    default_ks,
    pass_at_k,
    pass_at_k_curves,
)
from postlens.errors import ConfigError
from postlens.sampling.generation import SampleConfig


def test_estimator_matches_enumeration():
    n, c = 8, 3
    for k in range(1, n + 1):
        subsets = list(itertools.combinations([1] * c + [0] * (n - c), k))
        assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))
    assert default_ks(64) == [1, 2, 4, 8, 16, 32, 64]


def test_curves_with_known_verifiers(tiny_dirs):
    path = str(tiny_dirs["llama"])
    pair = ModelPair.load(path, path, backend="nnsight")
    prompts = ["a", "b", "c"]
    # Problem 0 always passes, problem 1 never, problem 2 passes when the completion starts with
    # an even token id: pass@k for it follows from the counted successes.
    tok = pair.tokenizer
    verifiers = [
        lambda s: True,
        lambda s: False,
        lambda s: bool(s) and tok(s).input_ids[1] % 2 == 0,
    ]
    result = pass_at_k_curves(
        {"base": pair.base, "post": pair.post},
        tok,
        prompts,
        verifiers,
        PassKConfig(sample=SampleConfig(n=8, limit=50, batch_size=256, max_new_tokens=4)),
    )
    for model in ("base", "post"):
        counts = result.correct[model]
        assert counts[:2] == [8, 0]
        for k, value in result.curves[model].items():
            expected = (1 + 0 + pass_at_k(8, counts[2], k)) / 3
            assert value == pytest.approx(expected)
    assert result.correct["base"] == result.correct["post"]  # same weights, same seed
    assert set(result.to_frame()["k"]) == {1, 2, 4, 8}
    # Every completion is kept with its verdict, and the verdicts are the counts.
    kept = result.samples_frame()
    assert len(kept) == 2 * 3 * 8 and list(kept.prompt[:1]) == ["a"]
    for model in ("base", "post"):
        rows = kept[kept.model == model]
        assert rows.groupby("problem").correct.sum().tolist() == result.correct[model]
        third = rows[rows.problem == 2]
        assert third.correct.tolist() == [verifiers[2](c) for c in third.completion]
    back = PassAtKResult.from_json(json.loads(json.dumps(result.to_json())))
    assert back.completions == result.completions and back.prompts == result.prompts
    bare = pass_at_k_curves({"base": pair.base}, tok, prompts, verifiers,
                            PassKConfig(sample=SampleConfig(n=2), keep_completions=False))  # fmt: skip
    assert bare.completions == {} and bare.prompts == []
    with pytest.raises(ConfigError, match="kept no completions"):
        bare.samples_frame()
    with pytest.raises(ValueError, match="one verifier per prompt"):
        pass_at_k_curves(
            {"base": pair.base},
            tok,
            prompts,
            verifiers[:2],
            PassKConfig(sample=SampleConfig(n=2, limit=50, batch_size=256)),
        )


def test_answer_verifiers():
    from postlens.data.verifiers import answer_verifier

    assert answer_verifier(42)("40 + 2 = 42.") and not answer_verifier(42)("42 or 43")
    assert answer_verifier("150", "answer-line")("got 150\nanswer 150\n")
    assert not answer_verifier(150, "answer-line")("answer 150 maybe")
    assert answer_verifier("ok", "contains")("it is ok!") and answer_verifier(" 7", "exact")("7\n")
    with pytest.raises(ValueError, match="unknown verifier"):
        answer_verifier(1, "regex")
