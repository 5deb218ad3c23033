"""Held-out quality of a confidence probe: correlation, ranking, calibration.

The generic rank metrics (ranks, AUROC, Pearson, Spearman) live in `postlens.metrics`; this module
keeps what is specific to confidence probes (calibration, the evaluation of a probe's readings).

All functions take plain numpy arrays and return floats (``None`` where a metric is undefined,
e.g. a correlation with a constant, an AUROC with one class only), so the results go to JSON.

Example:
    >>> round(evaluate(np.array([0.1, 0.9]), np.array([0.0, 1.0]))["brier"], 6)
    0.01
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Bool, Float

from postlens.metrics import auroc, pearson, rankdata


def expected_calibration_error(
    pred: Float[np.ndarray, " n"], target: Float[np.ndarray, " n"], bins: int = 10
) -> float:
    """ECE of predicted vs observed pass rates: Σ_bins share · |mean pred − mean target|."""
    which = np.clip((pred * bins).astype(int), 0, bins - 1)
    return float(
        sum(
            abs(pred[which == b].mean() - target[which == b].mean()) * (which == b).mean()
            for b in range(bins)
            if (which == b).any()
        )
    )


def evaluate(
    pred: Float[np.ndarray, " n"],
    target: Float[np.ndarray, " n"],
    final_right: Bool[np.ndarray, " m"] | None = None,
    final_pred: Float[np.ndarray, " m"] | None = None,
    cut: np.ndarray | None = None,
) -> dict[str, float | None]:
    """Pearson and Spearman with the behavioural score, AUROC, Brier score and ECE.

    Args:
        pred: the probe's reading at each held-out cut.
        target: the behavioural pass rate there.
        final_right: per trace, whether its final answer is right.
        final_pred: per trace, the reading used to predict it (e.g. at the last cut).
        cut: the cut index of each row; adds ``pearson_within_cut``, the correlation after
            removing each cut's mean from both, i.e. how well the probe ranks traces at the same
            point of their reasoning rather than only knowing how far along they are.

    Example:
        >>> evaluate(np.array([0.2, 0.8]), np.array([0.0, 1.0]))["pearson"]
        1.0
    """
    pred, target = np.asarray(pred, dtype=float), np.asarray(target, dtype=float)
    out: dict[str, float | None] = {
        "pearson": pearson(pred, target),
        "spearman": pearson(rankdata(pred), rankdata(target)) if len(pred) > 1 else None,
        "auroc_final_right": (
            auroc(final_pred, final_right)
            if final_right is not None and final_pred is not None
            else None
        ),
        "brier": float(np.mean((pred - target) ** 2)),
        "ece": expected_calibration_error(pred, target),
    }
    if cut is not None:
        out["pearson_within_cut"] = pearson(_demean(pred, cut), _demean(target, cut))
    return out


def _demean(x: np.ndarray, group: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(group, return_inverse=True)
    return x - (np.bincount(inverse, x) / np.bincount(inverse))[inverse]
