"""The HTML report: sections, escaping, failures, JSON read-back, and a real browser."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

import postlens as pl
from postlens.cli import app
from postlens.testing import save_tiny_model

EVIL = 'x <script>window.__pwned=true</script><img src=x onerror="window.__pwned=true"> "q\' </div>\x07'


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    root = tmp_path_factory.mktemp("family")
    paths = {
        name: save_tiny_model(root / name, "llama", seed=i)
        for i, name in enumerate(("base", "sft", "rl"))
    }
    prompts = root / "prompts.jsonl"
    prompts.write_text(
        "\n".join(json.dumps({"prompt": p}) for p in ["q: 1+2=?", EVIL, "abc"]) + "\n"
    )
    return paths, prompts


@pytest.fixture(scope="module")
def report_file(family, tmp_path_factory):
    paths, prompts = family
    out = tmp_path_factory.mktemp("report") / "report.html"
    runner = CliRunner()
    args = ["report", str(paths["base"]), "--sft", str(paths["sft"]), "--rl", str(paths["rl"])]
    result = runner.invoke(
        app,
        [
            *args,
            "--prompts",
            str(prompts),
            "--out",
            str(out),
            "--max-new-tokens",
            "12",
            "--json",
            str(out.with_suffix(".json")),
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def test_report_is_self_contained_and_escaped(report_file):
    html = report_file.read_text()
    assert "<script src=" not in html and "<link " not in html  # nothing fetched from a network
    assert html.count("Plotly.newPlot") >= 6
    assert "<script>window.__pwned" not in html and "<img src=x onerror" not in html
    assert "&lt;script&gt;window" in html  # shown as text
    for section in ("weights", "forks", "activations", "provenance"):
        assert f"id='sec-{section}'" in html
    assert "sha256:" in html and "postlens 0.1.0" in html
    assert report_file.stat().st_size < 10 * 2**20


def test_report_json_reads_back(report_file):
    embedded = re.search(
        r'<script type="application/json" id="postlens-data">(.*?)</script>',
        report_file.read_text(),
        re.S,
    )
    data = json.loads(embedded.group(1))
    assert data == json.loads(report_file.with_suffix(".json").read_text())
    sections = {s["name"]: s for s in data["sections"]}
    assert set(sections) == {"weights", "forks", "activations"}
    forks = sections["forks"]["data"]["children"]
    assert set(forks) == {"sft", "rl"} and 0 <= forks["rl"]["summary"]["agreement"] <= 1
    assert sections["activations"]["data"]["children"]["rl"]["layers"][0]["layer"] == 0
    assert data["provenance"]["settings"]["seed"] == 0
    # what these inputs cannot feed is listed with its reason, not silently dropped
    skipped = data["skipped_sections"]
    assert {"passk", "personas", "confidence"} <= set(skipped)
    assert "--personas FILE" in skipped["personas"]
    assert "Not run on these inputs" in report_file.read_text()
    assert pl.load_result(data).skipped == skipped


def test_failed_section_is_shown_and_the_rest_still_rendered(family):
    paths, prompts = family
    config = pl.ReportConfig(
        prompts=prompts, sections=("weights", "passk"), sample=pl.SampleConfig(max_new_tokens=8)
    )
    data = pl.load(str(paths["base"]), rl=str(paths["rl"])).report(config)
    assert data.failed == ["passk"]
    html = data.html()
    assert "class='failed' id='sec-passk'" in html and "needs an &#x27;answer&#x27;" in html
    assert "id='sec-weights'" in html
    assert data.to_json()["failed_sections"] == ["passk"]
    with pytest.raises(pl.PostlensError, match="unknown section"):
        pl.ReportConfig(sections=("nope",))


def _page(html: str) -> str:
    """The page without its embedded data and random element ids."""
    return re.sub(
        r"tv-[0-9a-f]{8}|[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}",
        "",
        html.split("postlens-data")[0],
    )


def test_render_rebuilds_the_page_from_results_alone(report_file, tmp_path):
    out = tmp_path / "again.html"
    for source in (report_file.with_suffix(".json"), report_file):  # the JSON, or the page itself
        result = CliRunner().invoke(app, ["render", str(source), "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert _page(out.read_text()) == _page(report_file.read_text())
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "forks"}')
    result = CliRunner().invoke(app, ["render", str(bad), "--out", str(out)])
    assert result.exit_code == 2 and "bad.json: not a report" in result.output


@pytest.mark.browser
def test_report_in_a_real_browser(report_file, tmp_path, browser_inspect):
    seen = browser_inspect(report_file, screenshot=tmp_path / "top.png")
    assert seen["errors"] == [] and seen["overflowing"] == []
    assert seen["n_plots"] >= 6 and seen["rendered_plots"] == seen["n_plots"]
    assert "base top-5" in seen["tooltip"] and "post top-5" in seen["tooltip"]
    assert seen["scripts_injected"] is False
    assert (tmp_path / "top.png").stat().st_size > 10_000


def test_a_persona_file_runs_the_personas_section_on_any_pair(family, tmp_path):
    paths, prompts = family
    personas = tmp_path / "personas.jsonl"
    tagged = [("terse", f"q: {i}+1=?", f" {i + 1}") for i in range(4)]
    tagged += [("chatty", f"q: {i}+1=?", f" well, it is {i + 1}!") for i in range(4)]
    personas.write_text("".join(
        json.dumps({"persona": p, "prompt": q, "completion": c}) + "\n" for p, q, c in tagged
    ))  # fmt: skip
    out = tmp_path / "r.html"
    args = ["report", str(paths["base"]), str(paths["rl"]), "--prompts", str(prompts),
            "--personas", str(personas), "--sections", "personas", "--out", str(out),
            "--json", str(tmp_path / "r.json")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["sections"][0]["name"] == "personas"
    assert set(data["sections"][0]["data"]["directions"]["personas"]) == {"terse", "chatty"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"persona": "a", "prompt": 3}\n')
    result = CliRunner().invoke(app, [*args[:5], "--personas", str(bad), "--out", str(out)])
    assert result.exit_code != 0 and "bad.jsonl:1" in result.output
    assert "Traceback" not in result.output
