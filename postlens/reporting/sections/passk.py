"""Report section: the reasoning boundary, pass@k (paper: arXiv 2504.13837).

Example:
    >>> SECTION.name
    'passk'
"""

from __future__ import annotations

import dataclasses
from typing import Any

from postlens.reporting.section import ReportContext, Section
from postlens.reporting.sections.common import records
from postlens.viz import causal_figures
from postlens.viz.html import esc, figure_div, table


def _compute(ctx: ReportContext) -> Any:
    from postlens.diffs.passk.compute import PassKConfig

    cfg = ctx.config
    sample = dataclasses.replace(
        PassKConfig().sample, n=cfg.passk_samples, limit=cfg.n_prompts,
        max_new_tokens=cfg.sample.max_new_tokens, seed=cfg.seed,
    )  # fmt: skip
    passk = PassKConfig(verifier=cfg.verifier, sample=sample)
    return ctx.family.passk(config=passk, progress=False)


def _unavailable(ctx: ReportContext) -> str | None:
    if ctx.config.prompts is not None and any(r.answer is None for r in records(ctx)):
        return "pass@k needs an 'answer' in every prompt record"
    if not ctx.family.inputs.provides("problems"):
        return "pass@k needs verifiable problems: a prompt file whose records have an 'answer'"
    return None


#: Kept completions shown per model (the JSON holds them all).
SHOWN_SAMPLES = 6


def _render(result: Any) -> str:
    from postlens.diffs.passk.compute import BOOTSTRAP

    bands = result.intervals(**BOOTSTRAP)
    level = f"{BOOTSTRAP['level']:.0%} bootstrap intervals over problems in brackets"
    out = figure_div(causal_figures.passk_intervals(result, bands))
    out += table(result.interval_rows())  # the legend's order
    out += f"<p class='muted'>{esc(level)}.</p>"
    if result.completions:  # a few verdicts to audit the verifier by; every one is in the JSON
        rows = result.samples_frame().groupby(["model", "problem"], sort=False).head(2)
        rows = rows.groupby("model", sort=False).head(SHOWN_SAMPLES)
        shown = rows[["model", "problem", "completion", "correct"]].to_dict("records")
        out += (
            f"<details><summary>Sampled completions and verdicts</summary>{table(shown)}</details>"
        )
    return out


def _sentences(result: Any) -> list[str]:
    from postlens.diffs.passk.bootstrap import crossing_text
    from postlens.diffs.passk.compute import BOOTSTRAP

    k_max = max(next(iter(result.curves.values())))
    parts = [f"{m} {c[1]:.2f} → {c[k_max]:.2f}" for m, c in result.curves.items()]
    base = next(iter(result.curves))
    crossed = [
        crossing_text(base, child, x, result.n, BOOTSTRAP["level"])
        for child, x in result.crossings(**BOOTSTRAP).items()
    ]
    return [f"pass@1 → pass@{k_max}: " + ", ".join(parts) + "."] + [f"{c}." for c in crossed]


SECTION = Section(
    name="passk",
    title="Reasoning boundary: pass@k",
    compute=_compute,
    render=_render,
    sentences=_sentences,
    unavailable=_unavailable,
    cost="passk_samples completions per problem from the base and every child",
)
