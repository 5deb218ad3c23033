"""Report section: the Activation Difference Lens (off by default: it samples per α and child).

Example:
    >>> SECTION.name, SECTION.default
    ('adl', False)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from postlens.reporting.section import ReportContext, Section
from postlens.viz import causal_figures
from postlens.viz.html import esc, figure_div, table


def _compute(ctx: ReportContext) -> Any:
    from postlens.diffs.adl.compute import ADLConfig

    default = ADLConfig()
    cfg = dataclasses.replace(
        default,
        limit=min(ctx.config.n_prompts, default.limit),
        sample=dataclasses.replace(default.sample, seed=ctx.config.seed),
    )
    return ctx.family.adl(config=cfg)


def _render(result: Any) -> str:
    parts = [figure_div(causal_figures.adl(result.results))]
    for child, res in result.results.items():
        parts.append(f"<h4>{esc(child)}</h4>" + table(res.to_frame().round(4).to_dict("records"))
                     + table(res.steer_frame().round(4).to_dict("records")))  # fmt: skip
    return "".join(parts)


def _sentences(result: Any) -> list[str]:
    out = []
    for child, res in result.results.items():
        s = res.summary()
        out.append(f"On unrelated text, {esc(child)}'s activations differ from the base's most at "
                   f"layer {s.peak_layer}; at layer {s.layer} δ reads as "
                   f"{esc(', '.join(repr(t) for t in s.top_post))} under its logit lens.")  # fmt: skip
        if left := [f"{j} ({n} of {s.n_texts} texts)" for j, n in enumerate(res.massive) if n]:
            out.append(f"Left out of δ as massive activations (by position): {'; '.join(left)}.")
    return out


SECTION = Section(
    name="adl",
    title="Causal test: the Activation Difference Lens",
    compute=_compute,
    render=_render,
    sentences=_sentences,
    default=False,
    cost="one forward of each model on the texts; per child and α, limit × n + n_prompts samples",
)
