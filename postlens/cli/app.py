"""The typer application that every subcommand module registers itself on."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

app = typer.Typer(
    name="postlens",
    help="What did post-training change inside this model? Compare a base model and its child.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Turn a `PostlensError` into a one-line message and exit code 2 instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from postlens.errors import PostlensError

        try:
            return fn(*args, **kwargs)
        except PostlensError as err:
            typer.echo(f"postlens: error: {err}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("postlens: interrupted; nothing half-written was left behind", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def setup_logging(verbose: bool) -> None:
    """Send postlens's log records to stderr (the library itself never prints)."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.callback()
def _root() -> None:
    """postlens: what did post-training (SFT or RL) change inside this model?"""
