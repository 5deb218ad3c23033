"""The ``postlens`` command line. Each subcommand lives in its own module of this package."""

from __future__ import annotations

from postlens.cli import activations, crosscoder, forks, info, passk, personas, report, weights  # noqa: F401  (one subcommand each)
from postlens.cli.app import app


def main() -> None:
    """Entry point of the ``postlens`` console script."""
    app()


__all__ = ["app", "main"]
