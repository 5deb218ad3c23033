"""Commands of the registered analyses that declare no command module of their own.

An analysis needs no CLI code to have a command: `family_command` builds it from the
declaration (options from its config, help from its question), with its inputs left to the
family's defaults and its result printed as its summary. An analysis that wants its own inputs
on the command line, or its own table, declares a module (``Analysis.cli``) instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rich.console import Console
from rich.table import Table

from postlens.cli.family_command import family_command
from postlens.registry import analyses


def show_summary(console: Console, result: Any) -> None:
    """Any result's summary as a table: one row per child, or one row.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class S:
        ...     agreement: float
        >>> class R:
        ...     kind = "demo"
        ...     def summary(self):
        ...         return S(0.5)
        >>> import io
        >>> console = Console(file=io.StringIO(), width=40)
        >>> show_summary(console, R())
        >>> "agreement" in console.file.getvalue()
        True
    """
    summary = result.summary()
    per_child = getattr(summary, "children", None)
    rows = per_child if isinstance(per_child, dict) else {"": summary}
    table = Table(title=f"{getattr(result, 'analysis', result.kind)}: summary")
    columns: list[str] = []
    for value in rows.values():
        for key in _flat(value):
            if key not in columns:
                columns.append(key)
    for col in ["", *columns]:
        table.add_column(col, justify="right")
    for name, value in rows.items():
        cells = _flat(value)
        table.add_row(name, *(_cell(cells.get(c)) for c in columns))
    console.print(table)


def _flat(value: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            k: v for k, v in dataclasses.asdict(value).items() if not isinstance(v, dict | list)
        }
    return {"value": value}


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


#: Analyses whose generic command is already on the app.
_REGISTERED: set[str] = set()


def register() -> None:
    """A command for every registered analysis whose declaration names no command module."""
    for a in analyses():
        if a.cli is None and a.name not in _REGISTERED:
            family_command(a.name, show_summary)
            _REGISTERED.add(a.name)
