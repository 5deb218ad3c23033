"""Bootstrap confidence intervals over problems for pass@k and for the crossing k.

See docs/science.md, *pass@k*, for the definitions.

Example:
    >>> correct = {"base": [0, 1, 3, 4], "rl": [4, 4, 0, 4]}
    >>> c = crossing_interval(correct, 4, [1, 2, 4], "base", "rl", n_boot=200)
    >>> c.k, 0.0 <= c.share_crossing <= 1.0
    (4, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from postlens.diffs.passk.estimator import pass_at_k


def _per_problem(counts: Sequence[int], n: int, ks: Sequence[int]) -> np.ndarray:
    return np.array([[pass_at_k(n, c, k) for k in ks] for c in counts])


def bootstrap_curves(
    correct: Mapping[str, Sequence[int]], n: int, ks: Sequence[int], n_boot: int, seed: int
) -> dict[str, np.ndarray]:
    """Model → ``[n_boot, len(ks)]`` pass@k of problem resamples (the same resample for all)."""
    n_problems = len(next(iter(correct.values())))
    idx = np.random.default_rng(seed).integers(0, n_problems, size=(n_boot, n_problems))
    return {m: _per_problem(c, n, ks)[idx].mean(axis=1) for m, c in correct.items()}


def percentile_band(
    boots: np.ndarray, ks: Sequence[int], level: float
) -> dict[int, tuple[float, float]]:
    """k → the (low, high) percentiles of the bootstrap draws at `level`."""
    lo, hi = np.percentile(boots, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return {k: (float(a), float(b)) for k, a, b in zip(ks, lo, hi, strict=True)}


def crossing_k(base: Sequence[float], child: Sequence[float], ks: Sequence[int]) -> int | None:
    """The smallest k at which the base's pass@k reaches the child's (``None``: never).

    Example:
        >>> crossing_k([0.2, 0.6, 0.9], [0.5, 0.7, 0.8], [1, 2, 4])
        4
    """
    for k, b, c in zip(ks, base, child, strict=True):
        if b >= c:
            return int(k)
    return None


@dataclass(frozen=True)
class CrossingK:
    """Where the base catches up with a child, and how sure that is.

    Attributes:
        k: the crossing k on all problems (``None``: the curves do not cross up to n).
        low, high: percentile interval of the crossing k over the resamples that cross.
        share_crossing: share of resamples whose curves cross at all up to n.
    """

    k: int | None
    low: int | None
    high: int | None
    share_crossing: float


def crossing_interval(
    correct: Mapping[str, Sequence[int]], n: int, ks: Sequence[int], base: str, child: str,
    n_boot: int = 1000, seed: int = 0, level: float = 0.95,
) -> CrossingK:  # fmt: skip
    """The crossing k of `base` and `child` and its bootstrap interval over problems."""
    point = crossing_k(_per_problem(correct[base], n, ks).mean(0),
                       _per_problem(correct[child], n, ks).mean(0), ks)  # fmt: skip
    boots = bootstrap_curves({m: correct[m] for m in (base, child)}, n, ks, n_boot, seed)
    found = [crossing_k(b, c, ks) for b, c in zip(boots[base], boots[child], strict=True)]
    crossed = np.array([k for k in found if k is not None])
    if not len(crossed):
        return CrossingK(point, None, None, 0.0)
    lo, hi = np.percentile(crossed, [50 * (1 - level), 50 * (1 + level)], method="nearest")
    return CrossingK(point, int(lo), int(hi), len(crossed) / len(found))


def crossing_text(base: str, child: str, crossing: CrossingK, n: int, level: float = 0.95) -> str:
    """One sentence on where `base` catches up with `child`, with its uncertainty (`level`:
    the interval's, as `crossing_interval` was given it).

    Example:
        >>> crossing_text("base", "rl", CrossingK(8, 4, 16, 0.97), 64)
        'base reaches rl at k = 8 (95% interval 4-16; 97% of resamples cross by k = 64)'
        >>> crossing_text("base", "rl", CrossingK(None, None, None, 0.02), 64)
        'base does not reach rl by k = 64 (2% of resamples cross)'
    """
    if crossing.k is None:
        return f"{base} does not reach {child} by k = {n} ({crossing.share_crossing:.0%} of resamples cross)"
    span = (
        f"{level:.0%} interval {crossing.low}-{crossing.high}; " if crossing.low is not None else ""
    )
    return (
        f"{base} reaches {child} at k = {crossing.k} ({span}{crossing.share_crossing:.0%} of "
        f"resamples cross by k = {n})"
    )
