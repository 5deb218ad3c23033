"""Every registered analysis has its command, listed by ``postlens --help`` and by the README."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
from pathlib import Path

from typer.testing import CliRunner

from postlens.cli import app, commands
from postlens.registry import analyses

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_help_and_readme_list_every_command():
    listed = CliRunner().invoke(app, ["--help"]).output
    table = set(re.findall(r"^\| `postlens ([a-z-]+)", README, re.M))
    for command in commands():
        assert command in listed, command
        assert command in table, f"the README's command table lacks {command}"


def _callback(name: str):
    return next(c.callback for c in app.registered_commands if c.name == name)


def test_every_analysis_command_takes_its_config_fields_as_options():
    for a in analyses():
        if a.cli is None:
            continue
        command = _callback(a.command_name)
        params = inspect.signature(command).parameters
        default = a.config_class()
        for field in command.config_fields:  # the options built from the declared config
            assert field.path[0] in {f.name for f in dataclasses.fields(a.config_class)}
            value = functools.reduce(getattr, field.path, default)
            shown = params[field.name].default.default
            as_list = lambda x: list(x) if isinstance(x, tuple | list) else x  # noqa: E731
            assert as_list(shown) == as_list(value), field
        assert len(command.config_fields) >= 3, a.name


def test_options_build_the_config_and_refuse_a_bad_value(tmp_path):
    out = CliRunner().invoke(app, ["steer", "--alphas", "1", "--alpha", "2", "--site", "nowhere"])
    assert out.exit_code == 2 and "site must be one of" in out.output
