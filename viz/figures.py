"""Plotly figures of postlens results, one function per figure (for notebooks and the report).

Example:
    >>> import postlens as pl
    >>> fig = weight_heatmap(pl.compare_weights("organism:base", "organism:rl", progress=False))
    >>> fig.layout.title.text
    'Relative update norm: organism:rl'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

#: One colour per model, by its place in the result: a child keeps its colour in every panel
#: (plotly's default colour cycle moves on with each trace, so a legend drawn from the first
#: panel would name the wrong colours in the others).
PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880")


def colour(index: int) -> str:
    """The colour of the `index`-th model of a figure.

    Example:
        >>> colour(0), colour(len(PALETTE))
        ('#636efa', '#636efa')
    """
    return PALETTE[index % len(PALETTE)]


_LAYOUT = {
    "template": "plotly_white",
    "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
    "height": 360,
}


def weight_heatmap(diff: Any, title: str | None = None) -> go.Figure:
    """Relative update norm per layer × module kind (a `WeightDiff`)."""
    frame = diff.to_frame()
    blocks = frame[frame["layer"].notna()]
    frame = blocks.assign(sq_d=blocks["norm_diff"] ** 2, sq_b=blocks["norm_base"] ** 2)
    grid = frame.groupby(["layer", "module"])[["sq_d", "sq_b"]].sum()
    rel = (grid["sq_d"] / grid["sq_b"]).pow(0.5).unstack("module")
    fig = go.Figure(
        go.Heatmap(
            z=rel.values,
            x=list(rel.columns),
            y=[int(v) for v in rel.index],
            colorscale="Reds",
            colorbar={"title": "‖ΔW‖/‖W‖"},
            hovertemplate="layer %{y} · %{x}<br>rel. norm %{z:.3g}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or f"Relative update norm: {diff.post}",
        xaxis_title="module",
        yaxis_title="layer",
        **_LAYOUT,
    )
    return fig


def sparsity_by_layer(diffs: Mapping[str, Any]) -> go.Figure:
    """Share of parameters changed beyond the tolerance, per layer, for each child."""
    fig = go.Figure()
    for name, diff in diffs.items():
        frame = diff.by_layer()
        labels = ["emb/final" if np.isnan(v) else str(int(v)) for v in frame["layer"]]
        fig.add_bar(x=labels, y=frame["frac_changed_tol"], name=name)
    fig.update_layout(
        title="Share of weights changed (|Δ| > atol) per layer",
        yaxis_title="share changed",
        barmode="group",
        **_LAYOUT,
    )
    return fig


def update_cosine(cosines: Mapping[str, float | None], label: str) -> go.Figure:
    """Cosine between two children's updates, per tensor."""
    names = [n for n, v in cosines.items() if v is not None]
    fig = go.Figure(go.Bar(x=[cosines[n] for n in names], y=names, orientation="h"))
    fig.update_layout(
        title=f"Cosine of the two updates per tensor ({label})",
        xaxis_title="cosine",
        **{**_LAYOUT, "height": max(360, 14 * len(names))},
    )
    return fig


def entropy_at_forks(results: Mapping[str, Any]) -> go.Figure:
    """Distribution of the base model's entropy: all positions vs fork positions."""
    fig = make_subplots(rows=1, cols=len(results), subplot_titles=list(results))
    bins = {
        "start": 0.0,
        "end": max(float(r.columns["entropy_base"].max()) for r in results.values()) + 1e-6,
        "size": 0.05,
    }
    for i, r in enumerate(results.values(), start=1):
        h = r.columns["entropy_base"]
        # The panel titles name the child; the two colours (and the legend) are the same in all.
        for j, (label, values) in enumerate((("all positions", h), ("forks", h[r.is_fork]))):
            fig.add_histogram(x=values, xbins=bins, histnorm="probability", name=label,
                              marker_color=colour(j), legendgroup=label, showlegend=i == 1,
                              opacity=0.6, row=1, col=i)  # fmt: skip
    fig.update_layout(
        title="Base entropy (nats): all positions vs forks", barmode="overlay", **_LAYOUT
    )
    return fig


def topk_coverage(results: Mapping[str, Any]) -> go.Figure:
    """Among disagreeing positions, the share whose post argmax is in the base top-k."""
    fig = go.Figure()
    for name, r in results.items():
        cov = r.summary().topk_coverage
        fig.add_scatter(
            x=[int(k) for k in cov], y=list(cov.values()), mode="lines+markers", name=name
        )
    fig.update_layout(
        title="Top-k coverage of the post model's choice at disagreements",
        xaxis_title="k",
        yaxis_title="coverage",
        yaxis_range=[0, 1.02],
        **_LAYOUT,
    )
    return fig


def layer_profile(results: Mapping[str, Any]) -> go.Figure:
    """Per-layer cosine, relative norm, logit-lens KL and patching recovery for each child."""
    panels = [("cosine_mean", "cosine(h_base, h_post)"), ("rel_norm_mean", "‖h_post − h_base‖/‖h_base‖"),
              ("logit_lens_kl", "logit-lens KL (nats)"), ("patch_recovered", "share of output KL recovered by patching")]  # fmt: skip
    fig = make_subplots(rows=1, cols=4, subplot_titles=[t for _, t in panels])
    for i, (name, r) in enumerate(results.items()):
        frame = r.to_frame()
        for col, (key, _) in enumerate(panels, start=1):
            fig.add_scatter(
                x=frame["layer"],
                y=frame[key],
                mode="lines+markers",
                line={"color": colour(i)},
                name=name,
                legendgroup=name,
                showlegend=col == 1,
                row=1,
                col=col,
            )
    fig.update_layout(title="Where in depth the models part", **{**_LAYOUT, "height": 340})
    fig.update_xaxes(title_text="layer", dtick=1)
    return fig


def pass_at_k_curves(result: Any) -> go.Figure:
    """pass@k against k (log scale) for each model."""
    fig = go.Figure()
    for name, curve in result.curves.items():
        fig.add_scatter(x=list(curve), y=list(curve.values()), mode="lines+markers", name=name)
    fig.update_layout(
        title=f"pass@k (unbiased, n={result.n} samples per problem)",
        xaxis_type="log",
        xaxis_title="k",
        yaxis_title="pass@k",
        yaxis_range=[0, 1.02],
        **_LAYOUT,
    )
    return fig


def confidence_trajectories(result: Any) -> go.Figure:
    """Mean behavioural confidence (solid) and the probe's reading (dashed) at each cut.

    `result` is a `postlens.probes.confidence.result.ConfidenceResult` (``fam.confidence()``).
    """
    fig = go.Figure()
    for i, (name, m) in enumerate(result.models.items()):
        fig.add_scatter(x=m.cuts, y=m.mean_trajectory, mode="lines+markers",
                        line={"color": colour(i)}, name=f"{name}: behavioural")  # fmt: skip
        fig.add_scatter(x=m.cuts, y=m.probe_trajectory, mode="lines",
                        line={"dash": "dash", "color": colour(i)}, name=f"{name}: probe")  # fmt: skip
    fig.update_layout(
        title="Confidence in the final answer as the reasoning unfolds",
        xaxis_title="fraction of the reasoning kept",
        yaxis_title="pass rate after forcing an answer",
        yaxis_range=[0, 1.02],
        **_LAYOUT,
    )
    return fig


def persona_projections(projections: Any) -> go.Figure:
    """Mean projection of the same untagged prompts on each persona direction, per model."""
    frame = projections.to_frame()
    fig = go.Figure()
    for model, rows in frame.groupby("model", sort=False):
        fig.add_bar(x=list(rows.persona), y=list(rows["mean"]), name=str(model))
    fig.update_layout(
        title="Projection of untagged prompts on each persona direction",
        yaxis_title="mean projection",
        barmode="group",
        **_LAYOUT,
    )
    return fig
