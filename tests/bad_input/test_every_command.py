"""Bad input on every command: exit 2 (or 1 where the input is readable but not clean), one line
naming the fault, no traceback, and nothing left behind — most of it before any model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from postlens.cli import app

B, SFT, RL = "organism:base", "organism:sft", "organism:rl"


def _files(root: Path) -> dict[str, bytes]:
    """The inputs each case may use (created fresh in the case's folder)."""
    return {
        "p.txt": b"Q: 1+2=?\n",
        "empty.txt": b"",
        "binary.txt": b"Q: 1+2=?\n\xff\xfe\x00bad\n",
        "bad.jsonl": b'{"prompt": "a", "completion": "b"}\nnot json\n',
        "mixed.jsonl": b'{"prompt": "a", "completion": " b"}\n{"prompt": "c"}\n',
        "noanswer.jsonl": b'{"prompt": "q"}\n',
        "textanswer.jsonl": b'{"prompt": "q", "answer": "forty"}\n',
        "forks.json": json.dumps({"kind": "forks"}).encode(),
        "notjson.json": b"{nope",
        "page.html": b"<html><body>no data</body></html>",
        "file_spec": b"not a model",
    }


# (id, command line, exit code, text the message must contain)
CASES = [
    ("info-missing", ["info", "./nope", RL], 2, "unknown model spec"),
    ("info-organism", ["info", "organism:nope", RL], 2, "unknown organism"),
    ("info-file-spec", ["info", "file_spec", RL], 2, "is a file"),
    ("info-dtype", ["info", B, RL, "--dtype", "float13"], 2, "float13"),
    ("info-device", ["info", B, RL, "--device", "cuda"], 2, "no CUDA GPU"),
    ("info-device-name", ["info", B, RL, "--device", "tpu9"], 2, "device"),
    ("info-backend", ["info", B, RL, "--backend", "tensorflow"], 2, "unknown backend"),
    ("weights-missing", ["weights", B, "./nope"], 2, "unknown model spec"),
    ("weights-atol", ["weights", B, RL, "--atol", "-1"], 2, "atol must be a finite number >= 0"),
    ("weights-rank-r", ["weights", B, RL, "--rank-r", "0"], 2, "rank_r"),
    ("weights-json-dir", ["weights", B, RL, "--json", "."], 2, "is a folder"),
    (
        "forks-prompts-missing",
        ["forks", B, RL, "--prompts", "none.txt"],
        2,
        "none.txt: prompt file not found",
    ),
    (
        "forks-prompts-empty",
        ["forks", B, RL, "--prompts", "empty.txt"],
        2,
        "empty.txt: prompt file is empty",
    ),
    ("forks-prompts-binary", ["forks", B, RL, "--prompts", "binary.txt"], 2, "binary.txt:2"),
    (
        "forks-prompts-jsonl",
        ["forks", B, RL, "--prompts", "bad.jsonl"],
        2,
        "bad.jsonl:2: malformed JSON",
    ),
    ("forks-mixed", ["forks", B, RL, "--prompts", "mixed.jsonl"], 2, "line"),
    ("forks-generate-neg", ["forks", B, RL, "--generate", "-2"], 2, "must be positive"),
    (
        "forks-generate-0",
        ["forks", B, RL, "--prompts", "p.txt", "--generate", "0"],
        2,
        "p.txt: no completion to score",
    ),
    ("forks-limit-0", ["forks", B, RL, "--limit", "0"], 2, "limit"),
    ("forks-js", ["forks", B, RL, "--js-threshold", "2"], 2, "js_threshold must be in"),
    ("forks-from", ["forks", B, RL, "--from", "nobody"], 2, "source must be"),
    ("forks-temperature", ["forks", B, RL, "--temperature", "-1"], 2, "temperature"),
    ("forks-top-p", ["forks", B, RL, "--top-p", "0"], 2, "top_p"),
    ("forks-max-new", ["forks", B, RL, "--max-new-tokens", "0"], 2, "must be positive"),
    ("forks-json-dir", ["forks", B, RL, "--json", "."], 2, "is a folder"),
    ("forks-dtype", ["forks", B, RL, "--dtype", "float13"], 2, "float13"),
    (
        "activations-prompts",
        ["activations", B, RL, "--prompts", "none.txt"],
        2,
        "none.txt: prompt file not found",
    ),
    ("activations-generate", ["activations", B, RL, "--generate", "-1"], 2, "must be positive"),
    ("activations-json-dir", ["activations", B, RL, "--json", "."], 2, "is a folder"),
    ("activations-device", ["activations", B, RL, "--device", "cuda:3"], 2, "no CUDA GPU"),
    ("passk-n", ["passk", B, RL, "--n", "0"], 2, "must be positive"),
    ("passk-k", ["passk", B, "--n", "2", "--k", "8"], 2, "every k must be in 1..n=2"),
    ("passk-verifier", ["passk", B, "--verifier", "regex"], 2, "unknown verifier 'regex'"),
    (
        "passk-verifier-organism",
        ["passk", B, "--verifier", "contains"],
        2,
        "--verifier applies to a prompt file",
    ),
    (
        "passk-no-answer",
        ["passk", B, "--prompts", "noanswer.jsonl"],
        2,
        "noanswer.jsonl:1: no 'answer'",
    ),
    ("passk-text-answer", ["passk", B, "--prompts", "textanswer.jsonl"], 2, "textanswer.jsonl:1"),
    ("passk-limit", ["passk", B, "--limit", "0"], 2, "must be positive"),
    ("passk-missing-model", ["passk", B, "./nope"], 2, "unknown model spec"),
    ("passk-json-dir", ["passk", B, "--json", "."], 2, "is a folder"),
    ("passk-engine", ["passk", B, "--engine", "vlm"], 2, "unknown engine 'vlm'"),
    ("passk-vllm", ["passk", B, "--engine", "vllm"], 2, "engine 'vllm' needs the vllm package"),
    ("personas-sae", ["personas", B, SFT, RL, "--sae", "./no-sae"], 2, "no-sae"),
    ("personas-file", ["personas", B, SFT, RL, "--personas", "none.jsonl"], 2, "none.jsonl"),
    ("personas-json-dir", ["personas", B, SFT, RL, "--json", "."], 2, "is a folder"),
    ("report-nothing", ["report"], 2, "give BASE"),
    ("report-no-child", ["report", B], 2, "give a post-trained model"),
    ("report-sections", ["report", "--demo", "--sections", "bogus"], 2, "unknown section(s) bogus"),
    ("report-out-dir", ["report", "--demo", "--out", "."], 2, "is a folder"),
    ("report-json-dir", ["report", "--demo", "--json", "."], 2, "is a folder"),
    ("report-n-prompts", ["report", "--demo", "--n-prompts", "0"], 2, "must be positive"),
    ("report-passk", ["report", "--demo", "--passk-samples", "0"], 2, "must be positive"),
    ("report-dtype", ["report", "--demo", "--dtype", "float13"], 2, "float13"),
    ("report-device", ["report", "--demo", "--device", "cuda"], 2, "no CUDA GPU"),
    ("crosscoder-kind", ["crosscoder", B, RL, "--kind", "topk9"], 2, "topk9"),
    ("crosscoder-prompts", ["crosscoder", B, RL, "--prompts", "none.txt"], 2, "none.txt"),
    ("crosscoder-json-dir", ["crosscoder", B, RL, "--json", "."], 2, "is a folder"),
    ("steer-where", ["steer", B, RL, "--where", "everywhere"], 2, "everywhere"),
    ("steer-n", ["steer", B, RL, "--n", "0"], 2, "positive"),
    ("extrapolate-n", ["extrapolate", B, RL, "--n", "0"], 2, "positive"),
    ("extrapolate-json-dir", ["extrapolate", B, RL, "--json", "."], 2, "is a folder"),
    ("substitute-n", ["substitute", B, RL, "--n", "0"], 2, "positive"),
    ("adl-k", ["adl", B, RL, "--k", "0"], 2, "positive"),
    ("adl-steered", ["adl", B, RL, "--steered", "nobody"], 2, "nobody"),
    ("fork-train-loss", ["fork-train", B, RL, "--loss", "mse"], 2, "mse"),
    ("confidence-samples", ["confidence", B, RL, "--n-samples", "0"], 2, "positive"),
    ("confidence-json-dir", ["confidence", B, RL, "--json", "."], 2, "is a folder"),
    ("confidence-dtype", ["confidence", B, RL, "--dtype", "float13"], 2, "float13"),
    ("fork-train-steps", ["fork-train", B, RL, "--steps", "-1"], 2, "steps"),
    ("render-missing", ["render", "none.json"], 2, "none.json: file not found"),
    ("render-not-json", ["render", "notjson.json"], 2, "notjson.json: not a JSON file"),
    ("render-not-report", ["render", "forks.json"], 2, "forks.json: not a report"),
    ("render-page-without-data", ["render", "page.html"], 2, "page.html: no postlens data"),
    ("render-out-dir", ["render", "forks.json", "--out", "."], 2, "is a folder"),
]


@pytest.mark.parametrize(
    ("args", "code", "text"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_on_the_command_line(args, code, text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, content in _files(tmp_path).items():
        (tmp_path / name).write_bytes(content)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(app, args)
    assert result.exit_code == code, result.output
    assert text in result.output, result.output
    assert (
        "Traceback" not in result.output
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    )
    lines = [ln for ln in result.output.splitlines() if ln.startswith("postlens: error:")]
    assert len(lines) == 1, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, no temp file


def test_the_suite_covers_every_command():
    from postlens.cli.app import app as typer_app

    commands = {c.name for c in typer_app.registered_commands}
    covered = {c[1][0] for c in CASES}
    assert commands <= covered, commands - covered
    assert len(CASES) >= 50
