"""The section of an analysis that declares none: its figure and its summary, off by default.

Example:
    >>> from postlens.registry import analysis
    >>> s = generic_section(analysis("crosscoder_three_way"))
    >>> s.name, s.default
    ('crosscoder_three_way', False)
"""

from __future__ import annotations

from typing import Any

from postlens.registry import Analysis
from postlens.reporting.section import ReportContext, Section
from postlens.viz.html import esc, figure_div


def generic_section(analysis: Analysis) -> Section:
    """A `Section` that runs `analysis` with its defaults and shows its figure and summary."""

    def compute(ctx: ReportContext) -> Any:
        return getattr(ctx.family, analysis.name)(progress=False)

    def render(result: Any) -> str:
        return f"<p class='muted'>{esc(analysis.question)}</p>{figure_div(result.plot())}{result._repr_html_()}"

    return Section(
        name=analysis.name,
        title=analysis.name.replace("_", " ").capitalize(),
        compute=compute,
        render=render,
        default=False,
        cost="the analysis with its default config",
    )
