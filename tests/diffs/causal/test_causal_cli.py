"""The causal-test commands and report sections, on tiny saved models."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from postlens.cli import app
from postlens.reporting.sections import by_name
from postlens.testing import save_model, tiny_model


def _setup(tmp_path):
    a, tok = tiny_model(seed=0)
    b, _ = tiny_model(seed=1)
    paths = [str(save_model(m, tok, tmp_path / n)) for m, n in ((a, "base"), (b, "child"))]
    problems = tmp_path / "p.jsonl"
    problems.write_text('{"prompt": "1+2=", "answer": "3"}\n{"prompt": "2+2=", "answer": "4"}\n')
    return paths, problems


def test_steer_and_extrapolate_commands(tmp_path):
    (base, child), problems = _setup(tmp_path)
    torch.save(torch.ones(32), tmp_path / "v.pt")
    common = ["--prompts", str(problems), "--limit", "2", "--n", "1", "--max-new-tokens", "4"]
    out = CliRunner().invoke(app, ["steer", base, child, "--vector", str(tmp_path / "v.pt"),
                                   "--layer", "1", "--alpha", "0", "--alpha", "2", *common,
                                   "--json", str(tmp_path / "s.json")])  # fmt: skip
    assert out.exit_code == 0, out.output
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["kind"] == "steer" and [r["alpha"] for r in data["rows"]] == [0.0, 2.0]
    assert data["rows"][0]["kl"]["base"] == 0.0
    out = CliRunner().invoke(app, ["extrapolate", base, child, "--alpha", "1", *common,
                                   "--json", str(tmp_path / "e.json")])  # fmt: skip
    assert out.exit_code == 0, out.output
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["kind"] == "extrapolate" and data["rows"][0]["kl"]["post"] == 0.0


def test_sections_are_off_by_default():
    assert not by_name()["steer"].default and not by_name()["extrapolate"].default


def test_substitute_command(tmp_path):
    (base, child), problems = _setup(tmp_path)
    out = CliRunner().invoke(app, ["substitute", base, child, "--tau", "-inf", "--tau", "3",
                                   "--prompts", str(problems), "--limit", "2", "--n", "1",
                                   "--max-new-tokens", "4", "--json", str(tmp_path / "f.json")])  # fmt: skip
    assert out.exit_code == 0, out.output
    data = json.loads((tmp_path / "f.json").read_text())
    rows = data["children"]["post"]["rows"]
    assert rows[0]["tau"] == "-inf" and rows[0]["share"] == 1.0
    assert not by_name()["substitution"].default


def test_steer_without_a_direction_says_which_options_give_one(tmp_path):
    (base, child), problems = _setup(tmp_path)
    out = CliRunner().invoke(app, ["steer", base, child, "--prompts", str(problems)])
    assert out.exit_code != 0 and "Traceback" not in out.output
    text = " ".join(out.output.split())
    assert "--vector FILE --layer L" in text and "--personas" not in text
