"""`fam.confidence()` on the organism: per-model figures, JSON round trip, report section, errors."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

import postlens as pl
from postlens.data.defaults import InputProvider
from postlens.errors import ConfigError, InputFileError
from postlens.probes.confidence.result import (
    ConfidenceConfig,
    ConfidenceResult,
    confidence_of_models,
)

CONFIG = ConfidenceConfig(
    pl.SampleConfig(limit=4, max_new_tokens=60), pl.TrajectoryConfig(n_samples=2, max_new_tokens=8)
)


def _html(text: str) -> str:
    """HTML without the random ids plotly gives each figure's div."""
    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", text)


@pytest.fixture(scope="module")
def family():
    return pl.load("organism:base", sft="organism:sft", rl="organism:rl")


@pytest.fixture(scope="module")
def result(family):
    return family.confidence(config=CONFIG)


def test_family_confidence_covers_every_model(result):
    assert isinstance(result, ConfidenceResult) and list(result.models) == ["base", "sft", "rl"]
    for name, m in result.models.items():
        s = result.summary()[name]
        assert s.n_traces == 4 and len(m.mean_trajectory) == len(m.probe_trajectory) == 6
        assert all(0 <= v <= 1 for v in m.mean_trajectory)
        assert s.first_score == m.mean_trajectory[0] and s.final_score == m.mean_trajectory[-1]
        assert m.best_layer in {r["layer"] for r in m.probe_rows}
        assert sum(t.n for t in m.by_label.values()) == 4
        assert m.probes is not None and m.probes.best_layer == m.best_layer  # probes kept in memory


def test_json_round_trip_keeps_the_summary_frame_and_figure(result):
    data = json.loads(json.dumps(result.to_json()))
    assert data["kind"] == "confidence"
    back = pl.Result.from_json(data)
    assert isinstance(back, ConfidenceResult) and back.summary() == result.summary()
    assert back.to_frame().equals(result.to_frame())
    assert back.plot().to_json() == result.plot().to_json()
    assert "<table" in back._repr_html_()


def test_report_section_renders_the_same_from_json(result):
    from postlens.reporting.sections.confidence import SECTION

    back = pl.Result.from_json(json.loads(json.dumps(result.to_json())))
    assert _html(SECTION.render(back)) == _html(SECTION.render(result))
    assert "arXiv 2605.24396" in SECTION.render(result)
    assert "BRI" + "EF" not in SECTION.render(result)  # the internal notes are never cited
    assert SECTION.sentences(back)[0].startswith("Overconfidence")


def test_bad_configs_and_missing_traces(family):
    with pytest.raises(ConfigError, match="positive"):
        pl.TrajectoryConfig(n_samples=0)
    with pytest.raises(ConfigError, match="at least 3 traces"):
        ConfidenceConfig(pl.SampleConfig(limit=2))
    with pytest.raises(InputFileError, match="need verifiable problems or reasoning traces"):
        dataclasses.replace(family, inputs=InputProvider()).confidence(config=CONFIG)
    with pytest.raises(ConfigError, match="missing for base"):
        confidence_of_models(family.models(), family.tokenizer, {}, CONFIG)
