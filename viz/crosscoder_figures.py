"""Figures of a crosscoder result (rendering only: they read a `CrosscoderResult`'s columns).

`crosscoder_figure`: left, the histogram of the relative decoder norm Δ per child (base-only
near 0, shared near 0.5, child-only near 1); right, Latent Scaling's ν^ε against ν^r for the
child-only and base-only latents (near the origin: truly specific; near (1, 1): an artifact).

Example:
    >>> import numpy as np
    >>> from postlens.diffs.crosscoder.model import CrosscoderConfig
    >>> from postlens.diffs.crosscoder.result import CrosscoderResult
    >>> cols = {"delta_rl": np.array([0.5, 1.0]), "class_rl": np.array(["shared", "child-only"]),
    ...         "nu_error_rl": np.array([np.nan, 0.1]), "nu_recon_rl": np.array([np.nan, 0.2])}
    >>> r = CrosscoderResult(["base", "rl"], "h", CrosscoderConfig(), cols, {}, {})
    >>> len(crosscoder_figure(r).data)
    2
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from postlens.viz.figures import colour

_SYMBOL = {"child-only": "circle", "base-only": "diamond"}


def _histogram(result: Any, child: str, name: str, color: str | None = None) -> go.Histogram:
    delta = np.asarray(result.columns[f"delta_{child}"], dtype=float)
    live = np.asarray(result.columns[f"class_{child}"]) != "dead"
    return go.Histogram(x=delta[live], name=name, xbins={"start": 0, "end": 1.0001, "size": 0.025},
                        opacity=0.7, marker_color=color)  # fmt: skip


def _scatter(result: Any, child: str, cls: str, color: str) -> go.Scatter | None:
    idx = result.latents(child, cls)
    nu_e = np.asarray(result.columns.get(f"nu_error_{child}", []), dtype=float)
    nu_r = np.asarray(result.columns.get(f"nu_recon_{child}", []), dtype=float)
    if not len(idx) or not len(nu_e):
        return None
    return go.Scatter(
        x=nu_e[idx], y=nu_r[idx], mode="markers", name=f"{child}: {cls}",
        marker={"symbol": _SYMBOL[cls], "size": 7, "color": color}, text=[f"latent {j}" for j in idx],
    )  # fmt: skip


def crosscoder_figure(result: Any) -> go.Figure:
    """Δ histogram (live latents) and the ν^ε / ν^r scatter, one colour per child."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "relative decoder norm Δ (0 base-only, 0.5 shared, 1 child-only)",
        "Latent Scaling: ν^ε vs ν^r (small: genuine)"))  # fmt: skip
    for i, c in enumerate(result.children):
        fig.add_trace(_histogram(result, c, f"{c}: Δ", colour(i)), row=1, col=1)
        for cls in ("child-only", "base-only"):
            trace = _scatter(result, c, cls, colour(i))
            if trace is not None:
                fig.add_trace(trace, row=1, col=2)
    thr = result.config.nu_threshold
    fig.add_shape(type="rect", x0=-0.05, y0=-0.05, x1=thr, y1=thr, line={"dash": "dot"},
                  row=1, col=2)  # fmt: skip
    fig.update_layout(barmode="overlay", height=380, margin={"t": 40, "b": 40})
    fig.update_xaxes(title_text="Δ", range=[0, 1], row=1, col=1)
    fig.update_yaxes(title_text="latents", row=1, col=1)
    fig.update_xaxes(title_text="ν^ε (error)", row=1, col=2)
    fig.update_yaxes(title_text="ν^r (reconstruction)", row=1, col=2)
    return fig


def delta_histograms(results: Mapping[str, Any]) -> go.Figure:
    """One Δ histogram per crosscoder (e.g. one pair crosscoder per child), overlaid."""
    fig = go.Figure()
    for name, r in results.items():
        for c in r.children:
            label = name if name == c else f"{name} / {c}"
            fig.add_trace(_histogram(r, c, label))
    fig.update_layout(barmode="overlay", xaxis_title="Δ", yaxis_title="latents", height=340)
    return fig
