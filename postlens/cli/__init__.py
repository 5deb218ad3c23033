"""The ``postlens`` command line. Each subcommand lives in its own module of this package.

Start-up is part of every command's time: a subcommand module imports what it needs (torch,
transformers, nnsight...) when it is imported, so `main` imports only the module of the command
being run (`postlens weights` never loads torch's model stack). ``postlens --help``, an unknown
command and the `app` attribute (used by tests and by `typer`'s runner) register every
subcommand.

Example:
    >>> command_module(["weights", "organism:base", "organism:rl"])
    'weights'
    >>> command_module(["--debug", "render", "results.json"])
    'report'
    >>> command_module(["--help"]) is None
    True
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import postlens.cli.app  # noqa: F401  (light: typer only; the commands register on its app)
from postlens.registry import analyses

# Importing the submodule bound the name ``app`` here to it; unbind it so that ``app`` is
# resolved by `__getattr__` below (the typer app with every subcommand registered).
del globals()["app"]

#: Commands that run no one analysis → the module of this package that registers them.
OTHER_COMMANDS = {"info": "info", "organism": "organism", "render": "report", "report": "report"}


def commands() -> dict[str, str]:
    """Subcommand → the module that registers it: each analysis's own module (its declared
    ``cli``, else `postlens.cli.generic`), and `OTHER_COMMANDS`.

    Example:
        >>> commands()["fork-train"], commands()["info"]
        ('fork_train', 'info')
    """
    return {a.command_name: a.cli or "generic" for a in analyses()} | OTHER_COMMANDS


def command_module(argv: Sequence[str]) -> str | None:
    """The module of the subcommand named in `argv` (options before it skipped), or ``None``."""
    for arg in argv:
        if not arg.startswith("-"):
            return commands().get(arg)
    return None


def load_commands(modules: Sequence[str] | None = None) -> Any:
    """Import the given subcommand modules (default: all) and return the typer app."""
    for module in sorted(set(commands().values()) if modules is None else set(modules)):
        loaded = importlib.import_module(f"postlens.cli.{module}")
        if module == "generic":  # analyses registered since it was imported get theirs too
            loaded.register()
    from postlens.cli.app import app as typer_app

    if modules is None:
        globals()["app"] = typer_app  # every command is registered: later lookups are direct
    return typer_app


def main() -> None:
    """Entry point of the ``postlens`` console script."""
    module = command_module(sys.argv[1:])
    load_commands(None if module is None else [module])()


def __getattr__(name: str) -> Any:
    # `from postlens.cli import app` gets the app with every subcommand registered; the
    # submodule itself stays importable (`from postlens.cli.app import friendly_errors`).
    if name == "app":
        return load_commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["OTHER_COMMANDS", "app", "command_module", "commands", "load_commands", "main"]
