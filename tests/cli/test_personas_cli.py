"""``postlens personas``: the organism end to end (JSON consistent with its own tables), bad files."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from postlens.cli import app
from postlens.cli.personas import read_persona_file
from postlens.errors import InputFileError

runner = CliRunner()


def test_organism_personas_json_is_consistent(tmp_path):
    out = tmp_path / "p.json"
    args = ["personas", "--per-persona", "24", "--limit", "40", "--top", "10", "--json", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["models"] == {"base": "organism:base", "sft": "organism:sft", "rl": "organism:rl"}
    assert set(data["directions"]["personas"]) == {"careful", "hasty", "sloppy"}
    assert data["sae"]["hook"] == "blocks.2.hook_resid_post"
    features = data["features"]
    summary = features["summary"]
    moved = summary["moved"]
    assert summary["moved_more"] == max(moved, key=lambda c: (moved[c], summary["l1_change"][c]))
    # every flagged latent listed as amplified/suppressed by a child is a flagged latent
    flagged = {int(k) for k in features["flags"]}
    for child in ("sft", "rl"):
        labels = summary["persona_flags"][child]
        assert set(labels["amplified"]) | set(labels["suppressed"]) <= flagged
        assert not set(labels["amplified"]) & set(labels["suppressed"])
    assert 0.0 <= summary["jaccard_top_n"] <= 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"persona": "a", "prompt": "x"}\nnot json\n', ":2: malformed JSON"),
        ('{"persona": "a"}\n', ":1: expected string 'persona' and 'prompt'"),
        ('{"persona": "a", "prompt": "x", "completion": 3}\n', ":1: 'completion' must be"),
        ('{"persona": "a", "prompt": "x"}\n{"persona": "a", "prompt": "y"}\n', "two personas"),
    ],
)
def test_bad_persona_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "personas.jsonl"
    path.write_text(text)
    with pytest.raises(InputFileError, match=message):
        read_persona_file(path, 10)


def test_persona_file_pairs_and_limit(tmp_path):
    path = tmp_path / "personas.jsonl"
    rows = [
        {"persona": p, "prompt": f"<{p}>", "completion": f" q{i}"} for p in "ab" for i in range(3)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    sets = read_persona_file(path, 2)
    assert sets == {"a": [("<a>", " q0"), ("<a>", " q1")], "b": [("<b>", " q0"), ("<b>", " q1")]}


def test_a_child_is_required_outside_the_organism(tiny_dirs):
    result = runner.invoke(app, ["personas", str(tiny_dirs["llama"])])
    assert result.exit_code != 0
    assert "give at least one child" in result.output


def test_without_sae_lens_the_skip_is_said_once_with_its_reason(monkeypatch, caplog):
    """The family ships an SAE but SAELens is missing: one line says so and how to fix it, not
    a warning, a second warning and a contradicting "no SAE given"."""
    import postlens.diffs.features.sae as sae

    monkeypatch.setattr(sae, "sae_lens_installed", lambda: False)
    args = ["personas", "--per-persona", "24", "--limit", "40", "--top", "10"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    said = result.output + caplog.text
    assert said.count("pip install 'postlens[sae]'") == 1, said
    assert "no SAE given" not in said
