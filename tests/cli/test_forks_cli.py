"""``postlens forks``: JSON, generation, and one-line errors for bad prompt files."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from postlens.cli import app

runner = CliRunner()


def test_forks_cli_generates_and_writes_json(tiny_dirs, tmp_path):
    path = str(tiny_dirs["llama"])
    prompts = tmp_path / "p.txt"
    prompts.write_text("q: 1+2=?\nhello\n")
    out = tmp_path / "f.json"
    args = [
        "forks",
        path,
        path,
        "--prompts",
        str(prompts),
        "--generate",
        "2",
        "--max-new-tokens",
        "6",
    ]
    result = runner.invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    s = data["summary"]
    assert s["n_sequences"] == 4 and s["agreement"] == 1.0 and data["forks"] == []
    assert data["kind"] == "forks"


def test_forks_cli_bad_prompt_files(tiny_dirs, tmp_path):
    path = str(tiny_dirs["llama"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\nnot json\n')
    result = runner.invoke(app, ["forks", path, path, "--prompts", str(bad)])
    assert result.exit_code == 2 and "bad.jsonl:2: malformed JSON" in result.output
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = runner.invoke(app, ["forks", path, path, "--prompts", str(empty)])
    assert result.exit_code == 2 and "empty" in result.output
    no_completion = tmp_path / "p.txt"
    no_completion.write_text("hello\n")
    args = ["forks", path, path, "--prompts", str(no_completion), "--generate", "0"]
    result = runner.invoke(app, args)
    assert (
        result.exit_code == 2
        and "p.txt: no completion" in result.output
        and "--generate" in result.output
    )
    args = ["forks", path, path, "--prompts", str(no_completion), "--js-threshold", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "js_threshold must be in" in result.output


def test_activations_cli(tiny_dirs, tmp_path):
    path = str(tiny_dirs["gpt2"])
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        '{"prompt": "q: 1+2=?", "completion": " 3"}\n{"prompt": "ab", "completion": "cd"}\n'
    )
    out = tmp_path / "a.json"
    result = runner.invoke(
        app,
        [
            "activations",
            path,
            path,
            "--prompts",
            str(prompts),
            "--generate",
            "0",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    layers = json.loads(out.read_text())["layers"]
    assert [x["layer"] for x in layers] == [0, 1] and layers[0]["cosine_mean"] == 1.0


def test_passk_cli(tiny_dirs, tmp_path):
    path = str(tiny_dirs["llama"])
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "q: 1+2=?", "answer": "a"}\n{"prompt": "b", "answer": "b"}\n')
    out = tmp_path / "k.json"
    args = ["passk", path, "--prompts", str(prompts), "--n", "4", "--verifier", "contains"]
    result = runner.invoke(app, [*args, "--max-new-tokens", "4", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    curve = data["curves"][tiny_dirs["llama"].name]
    assert list(curve) == ["1", "2", "4"] and curve["1"] <= curve["2"] <= curve["4"]
    lo, hi = data["intervals"][tiny_dirs["llama"].name]["1"]
    assert lo <= curve["1"] <= hi and f"{curve['1']:.3f} [{lo:.3f}, {hi:.3f}]" in result.output
    # Two models: the JSON and the output say where the first catches up with the second.
    result = runner.invoke(app, [*args, path, "--max-new-tokens", "4", "--json", str(out)])
    assert result.exit_code == 0, result.output
    crossing = next(iter(json.loads(out.read_text())["crossings"].values()))
    assert set(crossing) == {"k", "low", "high", "share_crossing"}
    assert "of resamples cross" in result.output
    prompts.write_text('{"prompt": "q"}\n')
    result = runner.invoke(app, ["passk", path, "--prompts", str(prompts)])
    assert result.exit_code == 2 and "p.jsonl:1: no 'answer' field" in result.output
    prompts.write_text('{"prompt": "q", "answer": 3}\n')
    result = runner.invoke(app, ["passk", path, "--prompts", str(prompts), "--n", "2", "--k", "8"])
    assert result.exit_code == 2 and "every k must be in 1..n=2" in result.output
