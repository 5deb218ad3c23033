"""`pl.load` and the family methods: one result per child, the common protocol, the defaults."""

from __future__ import annotations

import json

import pytest

import postlens as pl
from postlens.data.sequences import given_sequences
from postlens.diffs.forks.compute import score_forks

PROMPTS = ["Q: 12 + 34 = ?\n", "Q: 305 + 17 = ?\n"]


@pytest.fixture(scope="module")
def fam():
    return pl.load("organism:base", sft="organism:sft", rl="organism:rl")


@pytest.fixture(scope="module")
def seqs(fam):
    return fam.sample(PROMPTS, pl.SampleConfig(n=2, max_new_tokens=24, seed=3))


def test_load_names_children_and_shares_the_base(fam):
    assert fam.children == ["sft", "rl"]
    assert fam["sft"].base is fam["rl"].base and fam.base is fam["rl"].base
    assert list(fam.models()) == ["base", "sft", "rl"]
    with pytest.raises(pl.PostlensError, match="2 children"):
        _ = fam.pair
    with pytest.raises(KeyError, match="no child 'ppo'"):
        fam["ppo"]


def test_sampling_is_per_child_and_seeded(fam, seqs):
    assert set(seqs) == {"sft", "rl"} and all(len(v) == 4 for v in seqs.values())
    assert all(s.source == "post" for s in seqs["rl"])
    again = fam.sample(PROMPTS, pl.SampleConfig(n=2, max_new_tokens=24, seed=3))
    assert [s.completion_ids for s in again["rl"]] == [s.completion_ids for s in seqs["rl"]]


def test_family_forks_equal_the_pair_function(fam, seqs):
    forks = fam.forks(seqs)
    for child in fam.children:
        alone = score_forks(fam[child], seqs[child], progress=False)
        assert forks[child].summary() == alone.summary()
    assert forks.summary()["rl"] == forks["rl"].summary()
    frame = forks.to_frame()
    assert list(frame.columns[:1]) == ["child"] and set(frame.child) == {"sft", "rl"}


@pytest.mark.parametrize("method", ["forks", "activations"])
def test_every_result_round_trips_through_json(fam, seqs, method):
    result = getattr(fam, method)(seqs)
    again = pl.load_result(json.loads(json.dumps(result.to_json())))
    assert type(again) is type(result) and again.summary() == result.summary()
    assert again.to_frame().equals(result.to_frame())
    assert type(again.plot()).__name__ == "Figure" and "<div>" in again._repr_html_()


def test_weights_and_passk_follow_the_protocol(fam):
    weights = fam.weights(progress=False)
    assert weights.summary()["sft"].rel_norm > weights.summary()["rl"].rel_norm > 0
    again = pl.load_result(json.loads(json.dumps(weights.to_json())))
    assert again.summary() == weights.summary()
    passk = fam.passk(config=pl.PassKConfig(sample=pl.SampleConfig(n=4, limit=3, batch_size=256)))
    assert list(passk.summary().pass_at_1) == ["base", "sft", "rl"]
    assert pl.load_result(passk.to_json()).summary() == passk.summary()


def test_given_completions_are_scored_as_given(fam):
    records = [(PROMPTS[0], "12+34 answer 46")]
    seqs = fam.sample(records)
    expected = given_sequences(fam["rl"], records)
    assert seqs["rl"][0].completion_ids == expected[0].completion_ids
    with pytest.raises(pl.PostlensError, match="some prompts have a completion"):
        fam.sample([*records, "Q: 1 + 1 = ?\n"])


def test_options_are_validated_before_loading():
    with pytest.raises(pl.PostlensError, match="no CUDA GPU"):
        pl.load("organism:base", rl="organism:rl", device="cuda")
    with pytest.raises(pl.PostlensError, match="at least one post-trained child"):
        pl.load("organism:base")
    with pytest.raises(pl.PostlensError, match="must be positive"):
        pl.SampleConfig(n=0)
    with pytest.raises(pl.PostlensError, match="every k"):
        pl.PassKConfig(ks=(8,), sample=pl.SampleConfig(n=2, limit=50, batch_size=256))


def test_public_api_is_one_import():
    names = set(dir(pl))
    assert {"load", "Family", "SampleConfig", "ForkConfig", "Result", "report"} <= names
    with pytest.raises(AttributeError):
        _ = pl.nothing_here


def test_exported_names_are_the_objects_not_modules():
    import types

    for name in pl.__all__:
        if name != "__version__":
            assert not isinstance(getattr(pl, name), types.ModuleType), name
