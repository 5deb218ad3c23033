"""Held-out quality of a confidence probe: correlation, ranking, calibration.

All functions take plain numpy arrays and return floats (``None`` where a metric is undefined,
e.g. a correlation with a constant, an AUROC with one class only), so the results go to JSON.

Example:
    >>> evaluate(np.array([0.1, 0.9]), np.array([0.0, 1.0]))["brier"]
    0.01
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Bool, Float


def _rank(x: Float[np.ndarray, " n"]) -> Float[np.ndarray, " n"]:
    """Ranks (0-based) with ties averaged, as Spearman's correlation and the AUROC want."""
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
    _, inverse = np.unique(x, return_inverse=True)
    return (np.bincount(inverse, ranks) / np.bincount(inverse))[inverse]


def _auroc(scores: Float[np.ndarray, " n"], positive: Bool[np.ndarray, " n"]) -> float | None:
    """Probability that a positive outranks a negative (ties count half).

    Computed from average ranks (Mann-Whitney U) in O(n log n) time and O(n) memory, so it
    scales to the hundreds of thousands of rows feature screens produce.
    """
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    ranks = _rank(np.asarray(scores, dtype=float)) + 1
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


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
        "pearson": _corr(pred, target),
        "spearman": _corr(_rank(pred), _rank(target)) if len(pred) > 1 else None,
        "auroc_final_right": (
            _auroc(final_pred, final_right)
            if final_right is not None and final_pred is not None
            else None
        ),
        "brier": float(np.mean((pred - target) ** 2)),
        "ece": expected_calibration_error(pred, target),
    }
    if cut is not None:
        out["pearson_within_cut"] = _corr(_demean(pred, cut), _demean(target, cut))
    return out


def _demean(x: np.ndarray, group: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(group, return_inverse=True)
    return x - (np.bincount(inverse, x) / np.bincount(inverse))[inverse]
