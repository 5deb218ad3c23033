"""`fam.personas()` on the organism: summary dataclasses, JSON round trips, report section."""

from __future__ import annotations

import json
import re

import pytest

import postlens as pl
from postlens.data.defaults import InputProvider
from postlens.diffs.features.result import FeatureDiff
from postlens.diffs.personas.analysis import (
    PersonaAnalysis,
    PersonaConfig,
    PersonaInputs,
    persona_inputs,
)
from postlens.errors import ConfigError, InputFileError

CONFIG = PersonaConfig(n_per_persona=12, n_prompts=12, top_n=8)


def _html(text: str) -> str:
    """HTML without the random ids plotly gives each figure's div."""
    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", text)


@pytest.fixture(scope="module")
def family():
    return pl.load("organism:base", sft="organism:sft", rl="organism:rl")


@pytest.fixture(scope="module")
def found(family):
    inputs = persona_inputs(family.inputs, CONFIG)
    inputs.corpus = inputs.corpus[:6]  # the SAE's quality and contexts: a short corpus is enough
    return family.personas(inputs, CONFIG)


def test_family_personas_summary(found):
    s = found.summary()
    assert isinstance(found, PersonaAnalysis) and found.children == ["sft", "rl"]
    assert found.sae.source.endswith("sae") and found.sae.hook == "blocks.2.hook_resid_post"
    assert set(s.best_layers) == {"careful", "hasty", "sloppy"}
    for child in ("sft", "rl"):
        c = s[child]
        assert c.toward == max(c.projection_change, key=c.projection_change.get)
        for persona, shift in found.shifts[child].items():
            # the projection change is the mean shift along the direction: computed once
            assert c.projection_change[persona] == pytest.approx(
                shift.shift_norm * shift.cosine, abs=1e-4
            )
    latents = s.latents
    assert latents.moved_more in ("sft", "rl") and 0 <= latents.jaccard_top_n <= 1
    moved = latents.moved
    assert latents.moved_more == max(moved, key=lambda c: (moved[c], latents.l1_change[c]))


def test_json_round_trips(found):
    data = json.loads(json.dumps(found.to_json()))
    back = pl.Result.from_json(data)
    assert isinstance(back, PersonaAnalysis) and back.summary() == found.summary()
    assert back.vectors is None and back.to_frame().equals(found.to_frame())
    assert back.plot().to_json() == found.plot().to_json()
    features = pl.Result.from_json(json.loads(json.dumps(found.features.to_json())))
    assert isinstance(features, FeatureDiff) and features.summary() == found.features.summary()
    assert "<table" in back._repr_html_() and "<table" in features._repr_html_()


def test_report_section_renders_the_same_from_json(found):
    from postlens.reporting.sections.personas import SECTION

    back = pl.Result.from_json(json.loads(json.dumps(found.to_json())))
    html = SECTION.render(found)
    assert _html(SECTION.render(back)) == _html(html)
    assert "arXiv 2507.21509" in html and "BRI" + "EF" not in html  # internal notes are never cited
    assert SECTION.sentences(back) == SECTION.sentences(found)
    label, value = SECTION.cards(back, "rl")[0]
    assert label == "most-moved persona feature" and value


def test_without_an_sae(family):
    cfg = PersonaConfig(sae=None, n_per_persona=4, n_prompts=4)
    found = family.personas(config=cfg)
    assert found.features is None and found.sae is None and found.summary().latents is None
    back = pl.Result.from_json(json.loads(json.dumps(found.to_json())))
    assert back.summary() == found.summary()


def test_bad_configs_and_inputs():
    with pytest.raises(ConfigError, match="top_n"):
        PersonaConfig(top_n=0)
    with pytest.raises(ConfigError, match="auroc_threshold"):
        PersonaConfig(auroc_threshold=0.4)
    with pytest.raises(InputFileError, match="persona-tagged sets"):
        persona_inputs(InputProvider(), CONFIG)
    with pytest.raises(InputFileError, match="two personas"):
        PersonaInputs({"a": ["x", "y"]}, ["z"])
