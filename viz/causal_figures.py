"""Figures of the causal tests (steering, extrapolation, substitution, ADL, fork training).

Rendering only: each function reads a result and draws it.

Example:
    >>> from postlens.diffs.causal.sweep import SweepResult, SweepRow
    >>> rows = [SweepRow(a, 0.5, {"careful": 0.5}, {"rl": 1.0 - a}) for a in (0.0, 1.0)]
    >>> sweep(SweepResult("careful", 2, rows)).layout.title.text
    'Steering along careful at layer 2'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from postlens.viz.figures import colour

_LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
           "height": 380}  # fmt: skip


def sweep(result: Any) -> go.Figure:
    """Pass rate, label shares and on-policy KL to each model against α (a `SweepResult`)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("behaviour", "KL(p_α ‖ model)"))
    alphas = [r.alpha for r in result.rows]
    fig.add_trace(go.Scatter(x=alphas, y=[r.pass_rate for r in result.rows], name="pass rate",
                             mode="lines+markers"), row=1, col=1)  # fmt: skip
    labels = sorted({k for r in result.rows for k in r.shares})
    for label in labels:
        ys = [r.shares.get(label, 0.0) for r in result.rows]
        fig.add_trace(go.Scatter(x=alphas, y=ys, name=f"share {label}", mode="lines+markers",
                                 line={"dash": "dot"}), row=1, col=1)  # fmt: skip
    for model in result.rows[0].kl:
        ys = [r.kl[model] for r in result.rows]
        fig.add_trace(go.Scatter(x=alphas, y=ys, name=f"KL to {model}", mode="lines+markers"),
                      row=1, col=2)  # fmt: skip
    if result.kind == "extrapolate":
        title = f"Weight extrapolation {result.axis}"
    else:
        title = f"Steering along {result.axis} at layer {result.layer}"
    fig.update_xaxes(title_text="α")
    fig.update_layout(title=title, **_LAYOUT)
    return fig


def substitution(result: Any) -> go.Figure:
    """pass@1 and the share handed over against τ, with the random control (`SubstitutionResult`)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("pass@1", "share of positions handed over"))
    for i, (direction, rows) in enumerate(result.by_direction().items()):
        taus, line = [r.tau_label for r in rows], {"color": colour(i)}
        fig.add_trace(go.Scatter(x=taus, y=[r.pass_at_1 for r in rows], mode="lines+markers",
                                 line=line, name=f"{direction}: entropy > τ"), row=1, col=1)  # fmt: skip
        fig.add_trace(go.Scatter(x=taus, y=[r.control_pass_at_1 for r in rows],
                                 mode="lines+markers", line={**line, "dash": "dot"},
                                 name=f"{direction}: random, same share"), row=1, col=1)  # fmt: skip
        fig.add_trace(go.Scatter(x=taus, y=[r.share for r in rows], mode="lines+markers",
                                 line=line, name=f"{direction}: share"), row=1, col=2)  # fmt: skip
    fig.update_xaxes(title_text="τ (nats)", type="category")
    fig.update_layout(title="Fork substitution decoding", **_LAYOUT)
    return fig


def passk_intervals(
    result: Any, intervals: Mapping[str, Mapping[int, tuple[float, float]]]
) -> go.Figure:
    """pass@k curves with bootstrap bands (model → k → (low, high))."""
    fig = go.Figure()
    for i, (model, curve) in enumerate(result.curves.items()):
        ks = sorted(curve)
        band = intervals.get(model, {})
        fig.add_trace(go.Scatter(
            x=ks, y=[curve[k] for k in ks], name=model, mode="lines+markers",
            line={"color": colour(i)},
            error_y={"type": "data", "symmetric": False,
                     "array": [band[k][1] - curve[k] for k in ks] if band else None,
                     "arrayminus": [curve[k] - band[k][0] for k in ks] if band else None},
        ))  # fmt: skip
    fig.update_xaxes(type="log", title_text="k")
    fig.update_yaxes(title_text="pass@k")
    fig.update_layout(title="pass@k with bootstrap intervals over problems", **_LAYOUT)
    return fig


def adl(results: Mapping[str, Any]) -> go.Figure:
    """‖δ_ℓ‖ / ‖h_base‖ per layer and the steered pass rate per α, one trace per child."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("‖δ_ℓ‖ / ‖h_base‖", "steered pass rate"))
    for i, (child, res) in enumerate(results.items()):
        rel = [n / b if b > 0 else 0.0 for n, b in zip(res.norms, res.base_norms, strict=True)]
        fig.add_trace(go.Scatter(x=list(range(len(rel))), y=rel, mode="lines+markers",
                                 line={"color": colour(i)}, name=f"{child}: δ norm"), row=1, col=1)  # fmt: skip
        fig.add_trace(go.Scatter(x=[r.alpha for r in res.rows], y=[r.pass_rate for r in res.rows],
                                 mode="lines+markers", line={"color": colour(i)},
                                 name=f"{child}: α·δ"), row=1, col=2)  # fmt: skip
    fig.update_xaxes(title_text="layer", row=1, col=1)
    fig.update_xaxes(title_text="α", row=1, col=2)
    fig.update_layout(
        title="Activation Difference Lens (first tokens of unrelated text)", **_LAYOUT
    )
    return fig


def fork_train(results: Mapping[str, Any]) -> go.Figure:
    """The child's pass@1 gain recovered per seed, at the forks and at random positions."""
    fig = go.Figure()
    for i, (child, res) in enumerate(results.items()):
        for kind, dash in (("fork", "solid"), ("random", "dot")):
            rows = [r for r in res.rows if r.positions == kind]
            fig.add_trace(go.Scatter(x=[f"seed {r.seed}" for r in rows], y=[r.recovered for r in rows],
                                     mode="markers+lines", line={"dash": dash, "color": colour(i)},
                                     name=f"{child}: {kind} positions"))  # fmt: skip
    fig.update_yaxes(title_text="(pass@1_θ − base) / (post − base)")
    fig.update_layout(
        title="Fork-targeted training: the share of the child's gain recovered", **_LAYOUT
    )
    return fig
