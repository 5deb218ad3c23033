"""The protocol every postlens result follows.

A result is what an analysis returns. Whatever the analysis, it offers the same five things:

* ``summary()``: a small frozen dataclass of named figures (never string-keyed dicts);
* ``to_frame()``: a pandas ``DataFrame`` of the detail rows;
* ``to_json()`` / ``from_json()``: a JSON-ready dict with ``kind`` and ``schema`` keys, and
  back, with the same figures (the schema of the matching CLI command's ``--json``, and of a
  report's embedded data), so a view can be re-rendered without recomputing anything;
* ``plot()``: a plotly ``Figure``;
* ``_repr_html_()``: a compact view in Jupyter.

Subclasses name their kind once (``class ForkResult(Result, kind="forks")``); the kind is the
key `from_json` dispatches on. This module imports nothing of postlens, so every analysis can
build on it.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class CountSummary:
    ...     n: int
    >>> @dataclass
    ... class Count(Result, kind="doc-count"):
    ...     n: int
    ...     def summary(self) -> CountSummary:
    ...         return CountSummary(self.n)
    ...     def to_json(self) -> dict:
    ...         return {"kind": self.kind, "n": self.n}
    ...     @classmethod
    ...     def from_json(cls, data):
    ...         return cls(data["n"])
    >>> Result.from_json({"kind": "doc-count", "n": 3}).summary()
    CountSummary(n=3)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

SCHEMA_VERSION = 1
#: The summary dataclass of a result kind (``Result[ForkSummary]``).
SummaryT = TypeVar("SummaryT", covariant=True)


class Result(Generic[SummaryT]):
    """Base class of every result (see the module docstring), generic over its summary."""

    kind: ClassVar[str] = ""
    _kinds: ClassVar[dict[str, type[Result[Any]]]] = {}

    def __init_subclass__(cls, kind: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind:
            cls.kind = kind
            Result._kinds[kind] = cls
        if "to_json" in cls.__dict__:  # every result's JSON says what it is, and in which schema
            setattr(cls, "to_json", _stamped(cls.__dict__["to_json"]))  # noqa: B010

    def summary(self) -> SummaryT:
        """The headline figures, as a frozen dataclass."""
        raise NotImplementedError(f"{type(self).__name__} has no summary")

    def to_frame(self) -> Any:
        """The detail rows as a pandas DataFrame (default: the summary as one row)."""
        import pandas as pd

        return pd.DataFrame([summary_dict(self.summary())])

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; `from_json` reads it back.

        Every subclass's ``to_json`` returns ``kind`` and ``schema`` (`SCHEMA_VERSION`) first,
        whatever it writes itself.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot be written as JSON")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Result:
        """Rebuild a result from `to_json`'s output (on `Result` itself: any registered kind)."""
        if cls is not Result:
            raise NotImplementedError(f"{cls.__name__} cannot be read from JSON")
        kind = data.get("kind") if isinstance(data, Mapping) else None
        if kind not in Result._kinds:
            known = ", ".join(sorted(Result._kinds)) or "none loaded"
            raise KeyError(f"unknown result kind {kind!r} (known: {known})")
        schema = data.get("schema", SCHEMA_VERSION)
        if not isinstance(schema, int) or schema > SCHEMA_VERSION:
            raise ValueError(
                f"schema {schema!r} of this {kind} result is newer than this postlens reads "
                f"({SCHEMA_VERSION}): upgrade postlens"
            )
        return Result._kinds[kind].from_json(data)

    def plot(self) -> Any:
        """A plotly figure of the result."""
        raise NotImplementedError(f"{type(self).__name__} has no figure")

    @classmethod
    def plot_children(cls, results: Mapping[str, Result]) -> Any:
        """One figure comparing several children's results of this kind (child name → result).

        By default: the numeric figures of each child's summary side by side (a kind with a
        figure of its own overrides this).
        """
        import plotly.graph_objects as go

        fig = go.Figure()
        for child, result in results.items():
            numbers = {
                k: v
                for k, v in summary_dict(result.summary()).items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            fig.add_bar(x=list(numbers), y=list(numbers.values()), name=child)
        fig.update_layout(title=f"{cls.kind or cls.__name__}: summary by child", barmode="group")
        return fig

    def _repr_html_(self) -> str:
        from postlens.viz.html import esc, table

        title = f"<b>{esc(self.kind or type(self).__name__)}</b>"
        return f"<div>{title}{table([summary_dict(self.summary())])}</div>"


def _stamped(to_json: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    """`to_json` with ``kind`` and ``schema`` first in what it returns."""

    @functools.wraps(to_json)
    def stamped(self: Any) -> dict[str, Any]:
        out = to_json(self)
        return {"kind": self.kind, "schema": SCHEMA_VERSION, **out}

    return stamped


def summary_dict(summary: Any) -> dict[str, Any]:
    """A summary dataclass as a plain dict (JSON-ready)."""
    return dataclasses.asdict(summary)


def clean_float(x: float | None, digits: int = 7) -> float | None:
    """A float rounded to `digits` significant digits for JSON; NaN and ±inf become ``None``.

    Example:
        >>> clean_float(1 / 3), clean_float(float("nan"))
        (0.3333333, None)
    """
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")
