"""The ``postlens`` command line. Each subcommand lives in its own module of this package."""

from __future__ import annotations

from postlens.cli import activations, forks, info, weights  # noqa: F401  (each registers a subcommand)
from postlens.cli.app import app


def main() -> None:
    """Entry point of the ``postlens`` console script."""
    app()


__all__ = ["app", "main"]
