"""`postlens report --demo`, the README's first command: every section, in a real browser."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from postlens.cli import app
from postlens.reporting.sections import sections


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "report.html"
    result = CliRunner().invoke(
        app, ["report", "--demo", "--out", str(out), "--json", str(out.with_suffix(".json"))]
    )
    assert result.exit_code == 0, result.output
    return out, json.loads(out.with_suffix(".json").read_text())


def test_demo_has_every_section_and_stays_small(demo):
    path, data = demo
    # every default section (the expensive ones, e.g. crosscoder, run when asked for by name)
    assert [s["name"] for s in data["sections"]] == [s.name for s in sections() if s.default]
    assert [s.get("error") for s in data["sections"] if "error" in s] == []
    assert path.stat().st_size < 10 * 2**20


def test_summary_in_words_quotes_the_sections_numbers(demo):
    path, data = demo
    weights = next(s for s in data["sections"] if s["name"] == "weights")["data"]
    rel = {c: d["summary"]["rel_norm"] for c, d in weights["children"].items()}
    html = path.read_text()
    more, less = sorted(rel, key=rel.get, reverse=True)
    assert f"Weights: {more} moved them more than {less}" in html
    assert f"{rel[more]:.4f} vs {rel[less]:.4f}" in html


@pytest.mark.browser
def test_demo_in_a_real_browser(demo, tmp_path, browser_inspect):
    seen = browser_inspect(demo[0], screenshot=tmp_path / "top.png")
    assert seen["errors"] == [] and seen["overflowing"] == []
    assert seen["n_plots"] >= 8 and seen["rendered_plots"] == seen["n_plots"]
    assert "base top-5" in seen["tooltip"] and "post top-5" in seen["tooltip"]
    assert (tmp_path / "top.png").stat().st_size > 10_000
