"""What several sections share: the prompts of the report and the sequences sampled from them.

Example:
    >>> pct(0.1234)
    '12.3%'
"""

from __future__ import annotations

import dataclasses
from typing import Any

from postlens.reporting.section import ReportContext
from postlens.sampling.generation import SampleConfig


def pct(x: float) -> str:
    """A share as a percentage with one decimal."""
    return f"{100 * x:.1f}%"


def capped(default: SampleConfig, ctx: ReportContext) -> SampleConfig:
    """An analysis's own sampling defaults, at most the report's prompts, seeded by the report.

    Example:
        >>> from postlens.reporting.config import ReportConfig
        >>> capped(SampleConfig(n=4, limit=16), ReportContext(None, ReportConfig(n_prompts=8))).limit
        8
    """
    limit = min(ctx.config.n_prompts, default.limit or ctx.config.n_prompts)
    return dataclasses.replace(default, limit=limit, seed=ctx.config.seed)


def records(ctx: ReportContext) -> list[Any]:
    """The report's prompt records: the file given, or the family's own problems."""

    def make() -> list[Any]:
        return ctx.family.prompts(ctx.config.prompts, ctx.config.n_prompts)

    return ctx.shared("records", make)


def sequences(ctx: ReportContext) -> dict[str, list[Any]]:
    """Each child's sequences (sampled once, shared by forks and activations)."""
    return ctx.shared("sequences", lambda: ctx.family.sample(records(ctx), ctx.config.sample))
