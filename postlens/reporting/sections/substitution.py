"""Report section: fork substitution decoding (off by default: two models decode per τ).

Example:
    >>> SECTION.name, SECTION.default
    ('substitution', False)
"""

from __future__ import annotations

from typing import Any

from postlens.reporting.section import ReportContext, Section
from postlens.reporting.sections.common import capped
from postlens.reporting.sections.steer import _unavailable
from postlens.viz import causal_figures
from postlens.viz.html import esc, figure_div, table


def _compute(ctx: ReportContext) -> Any:
    from postlens.diffs.causal.substitution import SubstitutionConfig

    cfg = SubstitutionConfig(sample=capped(SubstitutionConfig().sample, ctx))
    return ctx.family.substitute(config=cfg)


def _render(result: Any) -> str:
    parts = []
    for child, res in result.results.items():
        rows = res.to_frame().round(4).to_dict("records")
        parts.append(
            f"<h4>{esc(child)}</h4>" + figure_div(causal_figures.substitution(res)) + table(rows)
        )
    return "".join(parts)


def _sentences(result: Any) -> list[str]:
    out = []
    for child, res in result.results.items():
        s = res.summary()
        if s.recovered is None:
            continue
        ctrl = (
            "" if s.control_recovered is None else f" (random positions: {s.control_recovered:.0%})"
        )
        out.append(f"Handing the base's forks above τ = {s.best_tau:g} ({s.best_share:.1%} of "
                   f"positions) to {esc(child)} recovers {s.recovered:.0%} of its pass@1 gain{ctrl}.")  # fmt: skip
    return out


SECTION = Section(
    name="substitution",
    title="Causal test: fork substitution decoding",
    compute=_compute,
    render=_render,
    sentences=_sentences,
    unavailable=_unavailable,
    default=False,
    cost="limit × n completions per τ and direction, each step through two models (and the control)",
)
