"""Report section: weight shifts (papers: arXiv 2505.11711, 2507.10616; RL's Razor 2509.04259).

Example:
    >>> SECTION.name, SECTION.title
    ('weights', 'Weight shifts')
"""

from __future__ import annotations

from typing import Any

from postlens.reporting.section import ReportContext, Section
from postlens.reporting.sections.common import pct
from postlens.viz import figures
from postlens.viz.html import esc, figure_div, table


def _compute(ctx: ReportContext) -> Any:
    return ctx.family.weights(progress=False)


def _unavailable(ctx: ReportContext) -> str | None:
    kinds = {p.post_spec.kind for p in ctx.family.pairs.values()} | {
        ctx.family.first.base_spec.kind
    }
    return (
        "the models were built in memory: no checkpoint files to read"
        if "memory" in kinds
        else None
    )


def _render(family: Any) -> str:
    rows = []
    for k, d in family.children.items():
        s = d.summary()
        rows.append({"child": k, "rel_norm": s.rel_norm, "changed (|Δ|>atol)": s.frac_changed_tol,
                     "changed (exact)": s.frac_changed_exact, "params": s.n_params,
                     "non-finite": s.n_nonfinite, "MiB read": s.bytes_read / 2**20,
                     "seconds": s.seconds})  # fmt: skip
    parts = [
        "<p class='muted'>Streamed tensor by tensor from the checkpoint files. Update sparsity = 1 − share "
        "changed. Size of a weight change does not predict behavioural change (RL's Razor, "
        "arXiv 2509.04259): read it next to the fork and KL figures below.</p>",
        table(rows),
        *(
            figure_div(figures.weight_heatmap(d, f"Relative update norm: {k}"))
            for k, d in family.children.items()
        ),
        figure_div(figures.sparsity_by_layer(family.children)),
    ]
    for label, cos in family.cosines.items():
        mean = family.summary().mean_update_cosine[label]
        shown = "–" if mean is None else f"{mean:.3f}"
        parts.append(f"<p>Mean cosine between the two updates ({esc(label)}): <b>{shown}</b></p>")
        parts.append(figure_div(figures.update_cosine(cos, label)))
    return "".join(parts)


def _sentences(family: Any) -> list[str]:
    s = family.summary()
    rel = {c: w.rel_norm for c, w in s.children.items()}
    changed = {c: w.frac_changed_tol for c, w in s.children.items()}
    order = sorted(rel, key=lambda k: rel[k], reverse=True)
    if len(order) == 1:
        c = order[0]
        return [f"Weights: {c} changed them by {rel[c]:.3g} relative to the base, "
                f"{pct(changed[c])} of entries moved{_caveat(s.children[c])}."]  # fmt: skip
    a, b = order[:2]
    text = (
        f"Weights: {a} moved them more than {b} (global relative change {rel[a]:.4f} vs "
        f"{rel[b]:.4f}, {rel[a] / max(rel[b], 1e-12):.2f}×); entries changed: "
        + ", ".join(f"{c} {pct(changed[c])}{_caveat(s.children[c])}" for c in order)
    )
    cos = [v for v in s.mean_update_cosine.values() if v is not None]
    if cos:
        text += f"; the two updates have a mean per-tensor cosine of {cos[0]:.2f}"
    return [text + "."]


def _caveat(w: Any) -> str:
    return f" ({w.resolution_note})" if w.resolution_note else ""


def _cards(family: Any, child: str) -> list[tuple[str, str]]:
    w = family[child].summary()
    return [
        ("global weight rel. norm", f"{w.rel_norm:.3g}"),
        (f"update sparsity (|Δ| ≤ {w.atol:g})", f"{1 - w.frac_changed_tol:.2%}{_caveat(w)}"),
    ]


SECTION = Section(
    name="weights",
    title="Weight shifts",
    compute=_compute,
    render=_render,
    sentences=_sentences,
    cards=_cards,
    unavailable=_unavailable,
    cost="one streamed read of every checkpoint; no forward pass (seconds per GiB)",
)
