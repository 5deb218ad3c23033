"""``postlens info``: output, JSON, and one-line errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from postlens.cli import app

runner = CliRunner()


def test_info_prints_pair_and_writes_json(tiny_dirs, tmp_path):
    path = str(tiny_dirs["gpt2"])
    out = tmp_path / "info.json"
    result = runner.invoke(app, ["info", path, path, "--backend", "nnsight", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "GPT2LMHeadModel" in result.output
    assert "blocks.0.hook_resid_pre" in result.output
    data = json.loads(out.read_text())
    assert data["n_layers"] == 2 and data["d_model"] == 32
    assert data["base"]["n_params"] == data["post"]["n_params"] > 0


def test_info_bad_spec_is_one_line(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "missing"), "organism:nope"])
    assert result.exit_code == 2
    assert "unknown model spec" in result.output
    assert "Traceback" not in result.output
