"""The typer application that every subcommand module registers itself on.

Errors reach the user as one line, ``postlens: error: ...``, with exit code 2; the global
``--debug`` option (or ``POSTLENS_DEBUG=1``) shows the traceback instead.

Example:
    $ postlens info organism:base organism:nope
    postlens: error: unknown organism 'nope': postlens ships base, sft, rl, chat-sft, rl-lora (use e.g. 'organism:base')
    $ postlens --debug info organism:base organism:nope   # the same, with the traceback
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import typer

from postlens.progress import PROGRESS_ENV

app = typer.Typer(
    name="postlens",
    help="What did post-training change inside this model? Compare a base model and its child.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])
#: Exit code of a command refused for bad input (click uses 2 for usage errors too).
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
# Set by the root callback, which runs before every subcommand, and cleared when the command
# ends. typer (0.29) runs its own vendored click with no public current-context accessor, so the
# option cannot be read from a context by code that does not take one.
_INVOCATION = {"debug": False}


def friendly_errors(fn: F) -> F:
    """Turn a bad-input error into a one-line message and exit code 2 instead of a traceback.

    Mapped: every `PostlensError`; every `OSError` (a file that cannot be read or written, a
    full disk: the message names the file); and a bare `ValueError` or `NotImplementedError`
    raised by postlens's own code (its argument checks). The same two raised inside a
    dependency are bugs and keep their traceback. With ``--debug`` nothing is mapped.

    Example:
        >>> from postlens.errors import InputFileError
        >>> @friendly_errors
        ... def hello() -> None:
        ...     raise InputFileError("prompts.txt:3: not UTF-8")
        >>> try:
        ...     hello()
        ... except typer.Exit as stop:
        ...     stop.exit_code  # after "postlens: error: prompts.txt:3: not UTF-8" on stderr
        2
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return _run(fn, args, kwargs)
        finally:
            _INVOCATION["debug"] = False

    return wrapper  # type: ignore[return-value]


def _run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        return fn(*args, **kwargs)
    except KeyboardInterrupt:
        if debug_enabled():
            raise
        typer.echo("postlens: interrupted; nothing half-written was left behind", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as err:
        message = None if debug_enabled() else user_error_message(err)
        if message is None:
            raise
        typer.echo(f"postlens: error: {message}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def user_error_message(err: BaseException) -> str | None:
    """The one-line message for a bad-input error, or ``None`` for a bug (keep the traceback).

    Example:
        >>> user_error_message(FileNotFoundError(2, "No such file or directory", "p.txt"))
        "[Errno 2] No such file or directory: 'p.txt'"
        >>> user_error_message(ZeroDivisionError("division by zero")) is None
        True
    """
    from postlens.errors import PostlensError

    if isinstance(err, PostlensError):
        return str(err)
    if isinstance(err, OSError) or (
        isinstance(err, (ValueError, NotImplementedError)) and _raised_by_postlens(err)
    ):
        return " ".join(str(err).split()) or type(err).__name__
    return None


def _raised_by_postlens(err: BaseException) -> bool:
    """Whether the innermost frame of the traceback is postlens's code (a deliberate check)."""
    tb: TracebackType | None = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "")
    return module == "postlens" or module.startswith("postlens.")


def debug_enabled() -> bool:
    """Whether the running command was given the global ``--debug`` (or ``POSTLENS_DEBUG=1``)."""
    return _INVOCATION["debug"]


def setup_logging(verbose: bool) -> None:
    """Send postlens's log records to stderr (the library itself never prints).

    With `verbose`, transformers' own records and progress bars show too; otherwise postlens
    keeps them quiet while it loads models (`postlens.models.loading.quiet_transformers`).

    Example:
        >>> setup_logging(verbose=False)
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if verbose:
        from transformers.utils import logging as hf_logging  # slow import: only when asked

        hf_logging.set_verbosity_info()


@app.callback()
def _root(
    debug: bool = typer.Option(
        False,
        "--debug",
        envvar="POSTLENS_DEBUG",
        help="Show the full traceback of an error instead of the one-line message.",
    ),
    progress: bool = typer.Option(
        False,
        "--progress",
        help="Show progress bars even when stderr is not a terminal (a log file, CI).",
    ),
) -> None:
    """postlens: what did post-training (SFT or RL) change inside this model?"""
    _INVOCATION["debug"] = debug
    if progress:  # read by postlens.progress.show_progress wherever progress is left unset
        os.environ[PROGRESS_ENV] = "1"
