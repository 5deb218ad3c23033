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


def test_info_says_a_child_is_a_lora_adapter(tmp_path):
    from postlens.models.adapters import read_adapter_config
    from postlens.models.specs import resolve_spec

    out = tmp_path / "info.json"
    result = runner.invoke(app, ["info", "organism:base", "organism:rl-lora", "--json", str(out)])
    assert result.exit_code == 0, result.output
    config = read_adapter_config(resolve_spec("organism:rl-lora").location)
    data = json.loads(out.read_text())
    want = f"LoRA adapter (r={config.r}, alpha={config.alpha:g}) merged into its base"
    assert data["post"]["source"] == want and data["base"]["source"] == ""
    assert "LoRA adapter" in result.output
