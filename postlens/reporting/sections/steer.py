"""Report sections: steering the base along a persona direction, and weight extrapolation.

Both are off by default (each samples the problems once per α). On a family of several
children, extrapolation runs from the base to the last child.

Example:
    >>> STEER.name, EXTRAPOLATE.name, STEER.default
    ('steer', 'extrapolate', False)
"""

from __future__ import annotations

from typing import Any

from postlens.reporting.section import ReportContext, Section
from postlens.reporting.sections.common import capped
from postlens.viz import causal_figures
from postlens.viz.html import esc, figure_div, table


def _unavailable(ctx: ReportContext) -> str | None:
    if not ctx.family.inputs.provides("problems"):
        return "steering and extrapolation need verifiable problems (records with an 'answer')"
    return None


def _steer(ctx: ReportContext) -> Any:
    from postlens.diffs.causal.steer import SteerConfig

    cfg = SteerConfig(sample=capped(SteerConfig().sample, ctx))
    return ctx.family.steer(config=cfg)


def _extrapolate(ctx: ReportContext) -> Any:
    from postlens.diffs.causal.extrapolate import ExtrapolateConfig

    cfg = ExtrapolateConfig(
        child=ctx.family.children[-1], sample=capped(ExtrapolateConfig().sample, ctx)
    )
    return ctx.family.extrapolate(config=cfg)


def _render(result: Any) -> str:
    return figure_div(causal_figures.sweep(result)) + table(
        result.to_frame().round(4).to_dict("records")
    )


def _sentences(result: Any) -> list[str]:
    s = result.summary()
    parts = [
        f"closest to {esc(m)} at α = {a:g} (KL {s.closest_kl[m]:.3f}, {s.kl_at_0[m]:.3f} at α = 0)"
        for m, a in s.closest_alpha.items()
        if m != "base"
    ]
    what = "Steering the base along " if result.kind == "steer" else "Extrapolating "
    return [what + esc(result.axis) + ": " + "; ".join(parts) + "."]


STEER = Section(
    name="steer",
    title="Causal test: steering the base along a persona direction",
    compute=_steer,
    render=_render,
    sentences=_sentences,
    unavailable=_unavailable,
    default=False,
    cost="limit × n completions per α from the steered base, scored by every model",
)
EXTRAPOLATE = Section(
    name="extrapolate",
    title="Causal test: weight extrapolation θ_base + α·Δ",
    compute=_extrapolate,
    render=_render,
    sentences=_sentences,
    unavailable=_unavailable,
    default=False,
    cost="limit × n completions per α from one working model, scored by every model",
)
