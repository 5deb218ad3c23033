"""Report section: per-layer activation shifts, logit lens and patching (model diffing).

Example:
    >>> SECTION.title
    'Activation shifts and patching'
"""

from __future__ import annotations

from typing import Any

from postlens.reporting.section import ReportContext, Section
from postlens.reporting.sections.common import sequences
from postlens.viz import figures
from postlens.viz.html import esc, figure_div, table


def _compute(ctx: ReportContext) -> Any:
    return ctx.family.activations(sequences(ctx), progress=False)


def _render(results: Any) -> str:
    rows = [
        {
            "child": k,
            "output KL": r.output_kl,
            "positions": r.n_positions,
            "parting layer (≥50% patched)": r.parting_layer(),
            "patching": r.patching,
            "logit-lens positions": r.lens_positions,
        }
        for k, r in results.items()
    ]
    tables = "".join(
        f"<h3>{esc(k)}</h3>{table(r.to_frame().to_dict('records'))}" for k, r in results.items()
    )
    return table(rows) + figure_div(figures.layer_profile(results)) + tables


def _sentences(results: Any) -> list[str]:
    parts = []
    for c, r in results.items():
        layer = r.parting_layer()
        where = "no single layer" if layer is None else f"layer {layer}"
        parts.append(f"{c} output KL(child‖base) {r.output_kl:.3g}, half of it recovered by "
                     f"patching {where}")  # fmt: skip
    return ["Activations: " + "; ".join(parts) + "."]


def _cards(results: Any, child: str) -> list[tuple[str, str]]:
    layer = results[child].parting_layer()
    return [
        (
            "first layer whose patch recovers half the output KL",
            "–" if layer is None else str(layer),
        )
    ]


SECTION = Section(
    name="activations",
    title="Activation shifts and patching",
    compute=_compute,
    render=_render,
    sentences=_sentences,
    cards=_cards,
    cost="two forwards and one backward of the base per batch (attribution patching of every "
    "layer at once), a logit lens at every layer on 4 sampled positions per sequence, and a KL "
    "over the vocabulary at every position; exact patching (patching='exact') adds one base "
    "forward per layer and batch",
)
