"""Adding an analysis is one package and one registration: everything else follows from it.

A planted analysis (the mean logit gap of each child on a fixed text) is written as a package
in a temporary folder, registered with `postlens.registry.register`, and then has, with no other
code: a family method, `pl.load_result`, a report section and a ``postlens`` command.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from typer.testing import CliRunner

import postlens as pl
from postlens import registry

PACKAGE = '''
"""A planted analysis: each child's mean |logit − base logit| on one text."""

from dataclasses import dataclass

import torch

from postlens.registry import Analysis
from postlens.results.family import ByChild
from postlens.results.protocol import Result


@dataclass(frozen=True)
class GapConfig:
    """Settings of the planted analysis.

    Attributes:
        text: the text both models read.
    """

    text: str = "Q: 1+2=?"


@dataclass(frozen=True)
class GapSummary:
    gap: float


@dataclass
class GapResult(Result, kind="planted_gap"):
    gap: float

    def summary(self) -> GapSummary:
        return GapSummary(self.gap)

    def to_json(self) -> dict:
        return {"gap": self.gap}

    @classmethod
    def from_json(cls, data):
        return cls(data["gap"])

    def plot(self):
        import plotly.graph_objects as go

        return go.Figure(go.Bar(y=[self.gap]))


def run(family, inputs, config, progress):
    out = {}
    for child, pair in family.pairs.items():
        batch = pair.tokenize([inputs or config.text])
        diff = pair.run("post", batch).logits - pair.run("base", batch).logits
        out[child] = GapResult(float(diff.abs().mean()))
    return ByChild("planted_gap", out)


ANALYSIS = Analysis(
    name="planted_gap",
    question="How far apart are each child's logits from the base's on one text?",
    config=f"{__name__}:GapConfig",
    result="postlens.results.family:ByChild",
    child_result=f"{__name__}:GapResult",
    run=f"{__name__}:run",
    inputs="a text (default: the config's).",
)
'''


@pytest.fixture
def planted(tmp_path, monkeypatch):
    (tmp_path / "planted_gap_analysis").mkdir()
    (tmp_path / "planted_gap_analysis" / "__init__.py").write_text(textwrap.dedent(PACKAGE))
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.register("planted_gap_analysis")
    yield registry.analysis("planted_gap")
    registry.unregister("planted_gap_analysis")
    sys.modules.pop("planted_gap_analysis", None)


def test_a_registered_package_gets_a_method_a_result_kind_a_section_and_a_command(planted):
    fam = pl.load("organism:base", rl="organism:rl")
    result = fam.planted_gap()
    assert result["rl"].gap > 0
    back = pl.load_result(json.loads(json.dumps(result.to_json())))
    assert back["rl"].gap == pytest.approx(result["rl"].gap)

    from postlens.reporting import ReportConfig
    from postlens.reporting.sections import by_name

    assert "planted_gap" in by_name() and not by_name()["planted_gap"].default
    report = fam.report(ReportConfig(sections=("planted_gap",)))
    assert report.failed == [] and "planted_gap" in report.html()

    from postlens.cli import load_commands

    app = load_commands()
    out = CliRunner().invoke(app, ["planted-gap", "organism:base", "organism:rl", "--text", "ab"])
    assert out.exit_code == 0, out.output
    assert "planted_gap" in out.output
