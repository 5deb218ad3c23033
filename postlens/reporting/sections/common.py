"""What several sections share: the prompts of the report and the sequences sampled from them.

Example:
    >>> pct(0.1234)
    '12.3%'
"""

from __future__ import annotations

from typing import Any

from postlens.reporting.section import ReportContext


def pct(x: float) -> str:
    """A share as a percentage with one decimal."""
    return f"{100 * x:.1f}%"


def records(ctx: ReportContext) -> list[Any]:
    """The report's prompt records: the file given, or the family's own problems."""

    def make() -> list[Any]:
        return ctx.family.prompts(ctx.config.prompts, ctx.config.n_prompts)

    return ctx.shared("records", make)


def sequences(ctx: ReportContext) -> dict[str, list[Any]]:
    """Each child's sequences (sampled once, shared by forks and activations)."""
    return ctx.shared("sequences", lambda: ctx.family.sample(records(ctx), ctx.config.sample))
