"""CLI errors: one line and exit 2 for bad input, the traceback with --debug, bugs never hidden."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from bad_inputs import leftovers
from typer.testing import CliRunner

from postlens.cli import app
from postlens.cli.app import friendly_errors
from postlens.errors import SpecError
from postlens.models.loading import LoadOptions

runner = CliRunner()
BAD_SPEC = ["info", "/nowhere/model", "organism:nope"]


def test_bad_input_is_one_line_exit_2():
    result = runner.invoke(app, BAD_SPEC)
    assert result.exit_code == 2
    assert result.output.strip() == (
        "postlens: error: unknown model spec '/nowhere/model': not an existing folder, "
        "not a hub id (org/name), and not organism:<base|sft|rl|chat-sft|rl-lora>"
    )


@pytest.mark.parametrize("env", [{}, {"POSTLENS_DEBUG": "1"}])
def test_debug_reraises(env):
    args = BAD_SPEC if env else ["--debug", *BAD_SPEC]
    result = runner.invoke(app, args, env=env)
    assert isinstance(result.exception, SpecError) and result.exit_code == 1
    assert "postlens: error" not in result.output
    # The flag lasts one invocation only.
    assert runner.invoke(app, BAD_SPEC, env={"POSTLENS_DEBUG": "0"}).exit_code == 2


def test_option_error_is_one_line_and_debug_shows_it(tiny_dirs):
    path = str(tiny_dirs["gpt2"])
    result = runner.invoke(app, ["info", path, path, "--dtype", "float64"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        "postlens: error: dtype must be float32, bfloat16 or float16, got 'float64'"
    )
    debug = runner.invoke(app, ["--debug", "info", path, path, "--dtype", "float64"])
    assert isinstance(debug.exception, ValueError)  # ConfigError, a ValueError too


def _raise(error: BaseException):
    raise error


def _in_postlens(error: BaseException):
    """Raise `error` from a frame of a postlens module (what `friendly_errors` looks at)."""
    scope = {"__name__": "postlens.fake", "error": error}
    exec("def fail():\n    raise error\n", scope)
    return scope["fail"]()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: LoadOptions(device="cpu", device_map="auto"), "give either device or device_map"),
        (
            lambda: Path("/nowhere/prompts.txt").read_text(),
            "No such file or directory: '/nowhere/prompts.txt'",
        ),
        (lambda: _raise(OSError(28, "No space left on device")), "No space left on device"),
        (lambda: _in_postlens(NotImplementedError("not yet\nfor this")), "not yet for this"),
    ],
    ids=["postlens-value-error", "missing-file", "disk-full", "postlens-not-implemented"],
)
def test_mapped_errors(capsys, call, message):
    with pytest.raises(typer.Exit) as exit_:
        friendly_errors(call)()
    assert exit_.value.exit_code == 2
    err = capsys.readouterr().err
    assert err.startswith("postlens: error: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: json.loads("{"), json.JSONDecodeError),  # a ValueError, but raised in json
        (lambda: 1 / 0, ZeroDivisionError),
        (lambda: [][0], IndexError),
        (lambda: _raise(NotImplementedError("raised outside postlens")), NotImplementedError),
    ],
)
def test_bugs_keep_their_traceback(call, error):
    with pytest.raises(error):
        friendly_errors(call)()


def _postlens(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "postlens", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **env},
        timeout=120,
    )


def test_real_process_broken_checkpoint_is_one_quiet_line(tiny_dirs, broken_dirs, tmp_path):
    """In a real process transformers' own handler writes to stderr: it must stay quiet."""
    out = tmp_path / "info.json"
    done = _postlens(
        "info", str(tiny_dirs["llama"]), str(broken_dirs["missing"]), "--json", str(out)
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"postlens: error: {broken_dirs['missing']}: the checkpoint does not match its "
        "config.json: 1 tensor missing (model.layers.0.mlp.up_proj.weight)"
    ]
    assert done.stdout == "" and leftovers(tmp_path) == []
    debug = _postlens("--debug", "info", str(tiny_dirs["llama"]), str(broken_dirs["missing"]))
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "postlens.errors.CheckpointError" in debug.stderr


def test_progress_only_on_a_terminal_unless_asked(monkeypatch):
    from postlens.progress import PROGRESS_ENV, show_progress

    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    assert show_progress(None) is False  # pytest's stderr is not a terminal
    monkeypatch.setenv(PROGRESS_ENV, "1")
    assert show_progress(None) is True and show_progress(False) is False
    result = runner.invoke(app, ["--progress", "render", "none.json"])
    assert result.exit_code == 2 and "none.json: file not found" in result.output


def test_a_real_sigint_mid_run_keeps_the_earlier_output_and_leaves_no_temporary(
    tiny_dirs, tmp_path
):
    """Ctrl-C while a command samples: exit 130 with one line, and the --json file of an earlier
    run is untouched (outputs are written whole, at the end, by a rename)."""
    import signal
    import time

    out = tmp_path / "forks.json"
    out.write_text('{"earlier": true}')
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(f'{{"prompt": "q {i}"}}\n' for i in range(64)))
    model = str(tiny_dirs["llama"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "postlens", "--progress", "forks", model, model, "--prompts",
         str(prompts), "--generate", "64", "--max-new-tokens", "100", "--json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"},
        # As from a terminal: a child inherits an ignored SIGINT (a test runner's or notebook
        # kernel manager's), and Python then never raises KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    seen = ""
    deadline = time.monotonic() + 120
    while "sampling" not in seen and time.monotonic() < deadline:  # wait until work has begun
        char = proc.stderr.read(1) if proc.stderr else ""
        if not char:  # the process ended first
            break
        seen += char
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "sampling" in seen and proc.returncode == 130, seen + err
    assert "postlens: interrupted; nothing half-written was left behind" in err
    assert "Traceback" not in err
    assert out.read_text() == '{"earlier": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forks.json", "prompts.jsonl"]
