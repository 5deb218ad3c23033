"""Report section: confidence trajectories (premature confidence, arXiv 2605.24396) and probes.

Computed by ``fam.confidence()`` (`postlens.probes.confidence.result`); rendered from the
`ConfidenceResult` alone, so a report read back from JSON renders the same.

Example:
    >>> SECTION.name, SECTION.default
    ('confidence', True)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from postlens.reporting.section import ReportContext, Section
from postlens.viz import figures
from postlens.viz.html import figure_div, table

INTRO = (
    "<p class='muted'>Traces cut at k/5 of their reasoning, an answer forced, pass rate of the "
    "continuations (premature confidence, arXiv 2605.24396). Overconfidence = Σ score_k·w_k, "
    "w = linspace(0.5, −0.5, 6). Dashed: a ridge probe on the residual stream (ours), one "
    "forward pass.</p>"
)


def _compute(ctx: ReportContext) -> Any:
    from postlens.probes.confidence.result import ConfidenceConfig

    default = ConfidenceConfig()
    sample = dataclasses.replace(default.sample, seed=ctx.config.seed)
    return ctx.family.confidence(config=dataclasses.replace(default, sample=sample))


def _unavailable(ctx: ReportContext) -> str | None:
    if ctx.family.inputs.provides("traces") or ctx.family.inputs.provides("problems"):
        return None
    return (
        "confidence trajectories need verifiable problems (--prompts FILE with 'answer') or "
        "reasoning traces (fam.confidence({model: [Trace(prompt, reasoning, verifier)]}))"
    )


def _render(result: Any) -> str:
    rows = [
        {"model": name, "traces": m.n_traces, "overconfidence": m.overconfidence,
         "best probe layer": m.best_layer, "probe r (held out)": m.best_row.get("pearson")}
        for name, m in result.models.items()
    ]  # fmt: skip
    styles = [
        {"model": name, "style": label, "n": t.n, "overconfidence": t.overconfidence}
        for name, m in result.models.items()
        for label, t in m.by_label.items()
    ]
    layers = [{"model": name, **row} for name, m in result.models.items() for row in m.probe_rows]
    return (
        INTRO
        + figure_div(figures.confidence_trajectories(result))
        + table(rows)
        + "<h3>By persona style</h3>"
        + table(styles)
        + "<details><summary>Probe quality per layer (held-out traces)</summary>"
        + table(layers)
        + "</details>"
    )


def _sentences(result: Any) -> list[str]:
    parts = [f"{m} {s.overconfidence:+.3f}" for m, s in result.summary().models.items()]
    return [
        "Overconfidence (Σ score·w, positive when the model is sure of its answer before "
        "reasoning): " + ", ".join(parts) + "."
    ]


SECTION = Section(
    name="confidence",
    title="Confidence trajectories",
    compute=_compute,
    render=_render,
    sentences=_sentences,
    unavailable=_unavailable,
    default=True,
    cost="n_problems traces per model, then 6 cuts × n_samples short continuations each, and "
    "one forward pass per model for the probes",
)
