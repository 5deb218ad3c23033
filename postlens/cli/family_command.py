"""A command for a registered analysis of a family: ``postlens NAME BASE CHILD... [options]``.

`family_command` builds the whole command from the analysis's declaration (`postlens.registry`):
its name, its help (the declared question), one option per config field (`with_config`), and
the options every such command shares (backend, dtype, device, ``--json``, ``--verbose``). The
command module gives only what is its own: how to read its inputs from the command line (a
function whose parameters become options) and how to print the result.

Each such command runs the same steps, in the same order: options validated (the config is
built), output paths checked, the load options checked, the inputs read, and only then the
family loaded and the analysis run; the result printed and written with ``--json``.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from postlens.cli import options as opt
from postlens.cli.app import app, friendly_errors, setup_logging
from postlens.cli.config_options import with_config
from postlens.registry import analysis as registered

Show = Callable[[Console, Any], None]


def _no_inputs() -> None:
    return None


def family_command(
    name: str,
    show: Show,
    *,
    children: Sequence[str] = ("organism:sft", "organism:rl"),
    read_inputs: Callable[..., Any] = _no_inputs,
    exclude: tuple[str, ...] = (),
    names: Mapping[str, str] | None = None,
) -> Callable[..., None]:
    """Register the command of the registered analysis `name` on the typer app.

    Args:
        name: the analysis's registered name (its command is `Analysis.command_name`).
        show: prints the result on the console.
        children: the children when none are given on the command line.
        read_inputs: reads the analysis's inputs; its parameters (with typer defaults) are the
            command's own options, and it runs before any model loads.
        exclude, names: as for `with_config`.

    Returns:
        The command function (registered).
    """
    analysis = registered(name)
    default_children = list(children)

    def command(
        base: str, children: list[str] | None, backend: str, dtype: str | None,
        device: str | None, json_out: Path | None, verbose: bool, config: Any = None,
        **own: Any,
    ) -> None:  # fmt: skip
        setup_logging(verbose)
        opt.check_outputs(json_out)
        opt.check_load(dtype, device)
        inputs = read_inputs(**own)
        fam = opt.load_children(base, children, default_children, backend, dtype, device)
        result = getattr(fam, analysis.name)(inputs, config)
        show(Console(), result)
        opt.write_json(json_out, result.to_json())

    head = [
        _param("base", str, typer.Argument("organism:base", help="Base model spec.")),
        _param("children", list[str] | None, typer.Argument(
            None, help=f"Children (default {' '.join(default_children)}).")),
    ]  # fmt: skip
    hints = typing.get_type_hints(read_inputs)  # resolved in the command module
    own = [
        p.replace(annotation=hints.get(p.name, p.annotation), kind=inspect.Parameter.KEYWORD_ONLY)
        for p in inspect.signature(read_inputs).parameters.values()
    ]
    tail = [
        _param("backend", str, opt.BACKEND),
        _param("dtype", str | None, opt.DTYPE),
        _param("device", str | None, opt.DEVICE),
        _param("json_out", Path | None, opt.JSON_OUT),
        _param("verbose", bool, opt.VERBOSE),
        _param("config", Any, None),
    ]
    command.__signature__ = inspect.Signature([*head, *own, *tail])  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in (*head, *own, *tail)}
    command.__doc__ = analysis.question
    command.__name__ = analysis.name
    built = with_config(analysis.config_class, exclude, names)(command)
    app.command(analysis.command_name)(friendly_errors(built))
    return built


def _param(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )
