"""Every registered analysis returns a result that follows the one protocol.

Parametrised over `postlens.registry`: a new analysis without a small configuration below fails
here, so none escapes the protocol. Each result is computed on the organism at a tiny size, then
checked: its declared class, a summary dataclass, a frame, a figure, an HTML view, JSON with
``kind`` and ``schema`` that survives ``json.dumps``, and `pl.load_result` reading it back to the
same JSON.
"""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import plotly.graph_objects as go
import pytest

import postlens as pl
from postlens import registry
from postlens.results.protocol import SCHEMA_VERSION, Result

SMALL = pl.SampleConfig(n=1, max_new_tokens=8, limit=2)
CROSSCODER = pl.CrosscoderConfig(n_latents=32, k=4, batch_tokens=128, training_tokens=256)
#: Analysis → (inputs, config) small enough for the suite; every registered analysis needs one.
CASES = {
    "weights": (None, pl.WeightDiffConfig()),
    "forks": (None, pl.ForkConfig(sample=SMALL)),
    "activations": (None, pl.ActivationConfig(sample=SMALL)),
    "passk": (
        None,
        pl.PassKConfig(sample=pl.SampleConfig(n=2, limit=2, batch_size=256, max_new_tokens=16)),
    ),
    "confidence": (
        None,
        pl.ConfidenceConfig(
            pl.SampleConfig(limit=3, max_new_tokens=60), pl.TrajectoryConfig(n_samples=1)
        ),
    ),
    "personas": (None, pl.PersonaConfig(sae=None, n_per_persona=4, n_prompts=4)),
    "crosscoder": ("corpus", CROSSCODER),
    "crosscoder_three_way": ("corpus", CROSSCODER),
    "steer": (
        None,
        pl.SteerConfig(alphas=(0.0,), sample=pl.SampleConfig(n=1, limit=2, max_new_tokens=8)),
    ),
    "extrapolate": (
        None,
        pl.ExtrapolateConfig(
            alphas=(0.0, 1.0), sample=pl.SampleConfig(n=1, limit=2, max_new_tokens=8)
        ),
    ),
    "substitute": (
        None,
        pl.SubstitutionConfig(
            taus=(0.5,), control=False, sample=pl.SampleConfig(n=1, limit=2, max_new_tokens=8)
        ),
    ),
    "adl": (
        None,
        pl.ADLConfig(
            n_texts=2,
            alphas=(0.0,),
            limit=1,
            n_prompts=1,
            sample=pl.SampleConfig(n=1, max_new_tokens=8),
        ),
    ),
    "fork_train": (
        None,
        pl.ForkTrainConfig(
            steps=1,
            seeds=(0,),
            train=1,
            n_eval=1,
            sample=pl.SampleConfig(n=1, limit=1, max_new_tokens=8),
        ),
    ),
}
NAMES = [a.name for a in registry.analyses()]


@pytest.fixture(scope="module")
def family():
    return pl.load("organism:base", sft="organism:sft", rl="organism:rl")


def test_every_registered_analysis_has_a_case():
    assert sorted(NAMES) == sorted(CASES)


@pytest.mark.parametrize("name", NAMES)
def test_result_protocol(family, name):
    inputs, config = CASES[name]
    if inputs == "corpus":
        inputs = family.inputs.corpus(20)
    analysis = registry.analysis(name)
    result = getattr(family, name)(inputs, config, progress=False)
    assert isinstance(result, analysis.result_class) and isinstance(result, Result)
    assert dataclasses.is_dataclass(result.summary())
    assert isinstance(result.to_frame(), pd.DataFrame)
    assert isinstance(result.plot(), go.Figure)
    assert isinstance(result._repr_html_(), str)
    data = json.loads(json.dumps(result.to_json()))
    assert data["kind"] == result.kind and data["schema"] == SCHEMA_VERSION
    back = pl.load_result(data)
    assert type(back) is type(result)
    assert json.dumps(back.to_json(), sort_keys=True) == json.dumps(data, sort_keys=True)


def test_a_newer_schema_is_refused_by_name(family):
    data = family.weights(progress=False).to_json() | {"schema": SCHEMA_VERSION + 1}
    with pytest.raises(pl.PostlensError, match="newer than this postlens reads"):
        pl.load_result(data)


def test_a_config_given_as_inputs_is_named(family):
    with pytest.raises(pl.PostlensError, match="config=ForkConfig"):
        family.forks(pl.ForkConfig())
