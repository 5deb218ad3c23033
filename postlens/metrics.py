"""Rank and correlation metrics shared by probes and diffs: ranks, AUROC, Pearson, Spearman.

Plain numpy in, a float out (``None`` where a metric is undefined: a correlation with a
constant input, an AUROC with one class only), so results go straight to JSON.

Example:
    >>> rankdata(np.array([3.0, 1.0, 3.0])).tolist()
    [1.5, 0.0, 1.5]
    >>> auroc(np.array([0.1, 0.4, 0.8]), np.array([False, False, True]))
    1.0
    >>> pearson(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 7.0])) > 0.98
    True
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Bool, Float


def rankdata(x: Float[np.ndarray, " n"]) -> Float[np.ndarray, " n"]:
    """Ranks (0-based) with ties averaged, as Spearman's correlation and the AUROC want."""
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
    _, inverse = np.unique(x, return_inverse=True)
    return (np.bincount(inverse, ranks) / np.bincount(inverse))[inverse]


def auroc(scores: Float[np.ndarray, " n"], positive: Bool[np.ndarray, " n"]) -> float | None:
    """Probability that a positive outranks a negative (ties count half).

    Computed from average ranks (Mann-Whitney U) in O(n log n) time and O(n) memory, so it
    scales to the hundreds of thousands of rows feature screens produce.
    """
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    ranks = rankdata(np.asarray(scores, dtype=float)) + 1
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def pearson(a: Float[np.ndarray, " n"], b: Float[np.ndarray, " n"]) -> float | None:
    """Pearson correlation; ``None`` with fewer than two values or a constant input."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def spearman(a: Float[np.ndarray, " n"], b: Float[np.ndarray, " n"]) -> float | None:
    """Spearman rank correlation (ties averaged); ``None`` for a constant input.

    Example:
        >>> spearman(np.array([1.0, 2.0, 3.0]), np.array([1.0, 5.0, 9.0]))
        1.0
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return None
    return pearson(rankdata(a), rankdata(b))
