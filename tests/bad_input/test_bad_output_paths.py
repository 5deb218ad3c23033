"""Output paths: refused before compute when unwritable; files never half-written; umask kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bad_inputs import leftovers

from postlens.errors import ConfigError, PostlensError
from postlens.io import check_writable, write_json_atomic, write_text_atomic


@pytest.fixture
def umask():
    """Set the process umask for one test, and restore it."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d: d / "a_folder", "is a folder"),
        (lambda d: d / "a_file" / "out.json", r"cannot create its folder: .*a_file is a file"),
        (lambda d: d / "a_file" / "deeper" / "out.json", "a_file is a file"),
    ],
    ids=["folder", "parent-is-file", "ancestor-is-file"],
)
def test_check_writable_names_the_path(tmp_path, make, match):
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "a_file").write_text("x")
    path = make(tmp_path)
    with pytest.raises(ConfigError, match=match) as err:
        check_writable(path)
    assert isinstance(err.value, PostlensError) and str(path) in str(err.value)
    assert leftovers(tmp_path) == ["a_file", "a_folder"]


def test_check_writable_refuses_unwritable_folder(tmp_path, monkeypatch):
    # Tests may run as root, for whom every folder is writable: pretend this one is not.
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == str(tmp_path) else real(p, m))
    with pytest.raises(ConfigError, match=rf"{tmp_path}/new/out.json: cannot write there"):
        check_writable(tmp_path / "new" / "out.json")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_check_writable_refuses_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    with pytest.raises(ConfigError, match="is not writable"):
        check_writable(ro / "out.json")


def test_check_writable_accepts_new_folders_and_creates_nothing(tmp_path):
    target = tmp_path / "new" / "deeper" / "out.json"
    assert check_writable(target) == target
    (tmp_path / "old.json").write_text("{}")
    check_writable(tmp_path / "old.json")
    assert leftovers(tmp_path) == ["old.json"]


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    path = write_json_atomic(tmp_path / "out.json", {"a": 1})
    assert os.stat(path).st_mode & 0o777 == mode


def test_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    path.chmod(0o640)
    write_text_atomic(path, "new")
    assert path.read_text() == "new" and os.stat(path).st_mode & 0o777 == 0o640


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch, error):
    path = tmp_path / "out.json"
    path.write_text("previous")

    def fail(*args):
        raise error

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(type(error)) as err:
        write_json_atomic(path, {"a": 1})
    if isinstance(error, OSError):
        assert f"cannot write {path}: No space left on device" in str(err.value)
    assert path.read_text() == "previous" and leftovers(tmp_path) == ["out.json"]


def test_unserialisable_data_writes_nothing(tmp_path):
    with pytest.raises(TypeError, match="cannot write object as JSON"):
        write_json_atomic(tmp_path / "out.json", {"a": object()})
    assert leftovers(tmp_path) == []


def test_writing_onto_a_folder_names_it(tmp_path):
    (tmp_path / "out.json").mkdir()
    with pytest.raises(OSError, match=rf"cannot write {tmp_path}/out.json"):
        write_text_atomic(tmp_path / "out.json", "{}")
    assert leftovers(tmp_path) == ["out.json"]


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_an_output_that_is_not_a_regular_file_is_refused(tmp_path, kind):
    if kind == "device":
        path = Path("/dev/null")
    else:
        path = tmp_path / "pipe"
        os.mkfifo(path)
    with pytest.raises(ConfigError, match=rf"{path}: not a regular file"):
        check_writable(path)


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    from postlens.testing import save_tiny_model

    root = tmp_path_factory.mktemp("pair")
    return [str(save_tiny_model(root / n, "llama", seed=i)) for i, n in enumerate(("b", "p"))]


def test_aliased_outputs_and_an_output_over_an_input_are_refused_before_work(tmp_path, tiny_pair):
    from typer.testing import CliRunner

    from postlens.cli import app

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "ab"}\n')
    runner = CliRunner()
    same = runner.invoke(app, ["report", *tiny_pair, "--prompts", str(prompts), "--out",
                               str(tmp_path / "r.html"), "--json", str(tmp_path / "./r.html")])  # fmt: skip
    assert same.exit_code == 2 and "given as two outputs" in same.output
    over = runner.invoke(
        app, ["forks", *tiny_pair, "--prompts", str(prompts), "--json", str(prompts)]
    )
    assert over.exit_code == 2 and "is an input of this run and also an output" in over.output
    assert prompts.read_text() == '{"prompt": "ab"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prompts.jsonl"]


def test_an_interrupted_report_never_replaces_a_complete_one(tmp_path, tiny_pair, monkeypatch):
    from typer.testing import CliRunner

    from postlens.cli import app
    from postlens.reporting import run

    out = tmp_path / "report.html"
    out.write_text("the complete report of an earlier run")
    real, calls = run._run_one, []

    def stopped_at_the_second(name, ctx):
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(name, ctx)

    monkeypatch.setattr(run, "_run_one", stopped_at_the_second)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "ab"}\n')
    args = ["report", *tiny_pair, "--prompts", str(prompts), "--sections", "weights,forks",
            "--max-new-tokens", "4", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 130
    assert out.read_text() == "the complete report of an earlier run"
    partial = tmp_path / "report.partial.html"
    assert (
        "sec-weights" in partial.read_text()
        and "interrupted: the finished sections go to" in result.output
    )
