"""Linear read-outs of pass rates: ridge in closed form or logistic by L-BFGS, with grouped CV.

Inputs are standardised activations ``x`` ``[n, d]`` and labels ``y`` in [0, 1]. Both methods
choose their penalty by k-fold cross-validation whose folds never split a group (the cuts of one
trace share a prefix, so rows of one trace must sit on the same side), scored by the mean squared
error of the predicted rate, so the two methods' ``cv_mse`` are comparable.

* ``ridge``: least squares on the rate, predictions clipped to [0, 1]. One Gram matrix over all
  rows (float32 products, float64 algebra) and one eigendecomposition per fold give the whole
  penalty path exactly.
* ``logistic``: cross-entropy with soft labels (a fractional logit: the right likelihood for a
  rate), L2-penalised, by L-BFGS; predictions sigmoid(xw + b). Each penalty is a new fit, warm
  started from the previous one.

Example:
    >>> x = torch.randn(60, 4)
    >>> y = (x[:, 0] > 0).float()
    >>> fit = fit_linear(x, y, method="ridge", groups=np.arange(60) // 3)
    >>> fit.predict(x[:5]).shape
    torch.Size([5])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from postlens.errors import ConfigError

#: Ridge penalties tried, as multiples of the row count (the Gram diagonal of standardised
#: features is n).
RIDGE_GRID = tuple(float(a) for a in np.logspace(-5, 1, 13))
#: L2 coefficients tried for the logistic fit (on the mean loss).
L2_GRID = tuple(float(a) for a in np.logspace(-5, -1, 5))
METHODS = ("ridge", "logistic")


@dataclass
class LinearFit:
    """A fitted read-out: ``link(x · w + b)``.

    Attributes:
        w: weights.
        b: intercept.
        penalty: the ridge (x n) or L2 coefficient used.
        cv_mse: cross-validated mean squared error at that penalty, when chosen by CV.
        link: ``"clip"`` (ridge) or ``"sigmoid"`` (logistic).
    """

    w: Float[Tensor, " d"]
    b: float
    penalty: float
    cv_mse: float | None
    link: str

    def predict(self, x: Float[Tensor, "n d"]) -> Float[Tensor, " n"]:
        return apply_link(x @ self.w + self.b, self.link)


def apply_link(z: Tensor, link: str) -> Tensor:
    return torch.sigmoid(z) if link == "sigmoid" else z.clamp(0, 1)


def fit_linear(
    x: Float[Tensor, "n d"],
    y: Float[Tensor, " n"],
    method: str = "ridge",
    penalty: float | str = "auto",
    groups: Sequence[int] | np.ndarray | None = None,
    folds: int = 5,
    seed: int = 0,
) -> LinearFit:
    """Fit `y` ≈ link(x · w + b); `penalty="auto"` picks it by grouped k-fold CV."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
    if penalty != "auto" and (isinstance(penalty, str) or penalty < 0):
        raise ConfigError(f"the penalty (ridge) must be >= 0 or 'auto', got {penalty!r}")
    x, y = x.float(), y.float()
    if penalty == "auto":
        fold = _assign_folds(len(y), groups, folds, seed)
    else:
        fold = torch.zeros(len(y), dtype=torch.long)
    # Rows sorted by fold, so that each fold is a contiguous slice (a view, not a copy).
    order = torch.argsort(fold, stable=True)
    x, y = x[order], y[order]
    ends = torch.cumsum(torch.bincount(fold), 0).tolist()
    slices = [slice(a, b) for a, b in zip([0, *ends[:-1]], ends, strict=True)]
    if method == "ridge":
        return _fit_ridge(x, y, slices, penalty)
    return _fit_logistic(x, y, slices, penalty)


def _assign_folds(
    n: int, groups: Sequence[int] | np.ndarray | None, folds: int, seed: int
) -> Tensor:
    groups = np.arange(n) if groups is None else np.asarray(groups)
    if len(groups) != n:
        raise ConfigError(f"{len(groups)} group ids for {n} rows")
    unique, inverse = np.unique(groups, return_inverse=True)
    if len(unique) < 2 or folds < 2:
        raise ConfigError("cross-validation needs at least two groups and two folds")
    order = np.random.default_rng(seed).permutation(len(unique))
    return torch.from_numpy((order % min(folds, len(unique)))[inverse])


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run LAPACK's d x d factorisations on one thread: with several threads on a busy CPU the
    symmetric eigensolver was 80x slower (42 s vs 0.55 s for d = 1024 on 2 shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class _Stats:
    """Sufficient statistics of least squares on a set of rows: Gram matrix, Xᵀy, sums, count.

    Products over rows run in float32 (the O(n d²) part, twice as fast as float64); the d x d
    algebra runs in float64.
    """

    gram: Tensor
    xty: Tensor
    sum_x: Tensor
    sum_y: float
    n: int

    @classmethod
    def of(cls, x: Tensor, y: Tensor) -> _Stats:
        return cls(
            (x.T @ x).double(), (x.T @ y).double(), x.double().sum(0), float(y.sum()), len(y)
        )

    @classmethod
    def sum(cls, parts: Sequence[_Stats]) -> _Stats:
        return cls(
            torch.stack([p.gram for p in parts]).sum(0),
            torch.stack([p.xty for p in parts]).sum(0),
            torch.stack([p.sum_x for p in parts]).sum(0),
            sum(p.sum_y for p in parts),
            sum(p.n for p in parts),
        )

    def minus(self, other: _Stats) -> _Stats:
        return _Stats(
            self.gram - other.gram,
            self.xty - other.xty,
            self.sum_x - other.sum_x,
            self.sum_y - other.sum_y,
            self.n - other.n,
        )

    def centred(self) -> tuple[Tensor, Tensor, Tensor, float]:
        """Gram matrix and Xᵀy of the centred rows, and the means (the intercept is free)."""
        mx, my = self.sum_x / self.n, self.sum_y / self.n
        return self.gram - self.n * torch.outer(mx, mx), self.xty - self.n * mx * my, mx, my

    def solve(self, ridge: float) -> tuple[Tensor, float]:
        g, c, mx, my = self.centred()
        with _one_thread():
            w = torch.linalg.solve(g + ridge * torch.eye(len(c), dtype=g.dtype), c)
        return w, float(my - mx @ w)


def _fit_ridge(x: Tensor, y: Tensor, slices: list[slice], penalty: float | str) -> LinearFit:
    stats = [_Stats.of(x[s], y[s]) for s in slices]
    total = _Stats.sum(stats)
    cv_mse = None
    if penalty == "auto":
        lambdas = [a * len(y) for a in RIDGE_GRID]
        sse = np.zeros(len(lambdas))
        lam = torch.tensor(lambdas, dtype=torch.float64)
        for rows, held_out in zip(slices, stats, strict=True):
            g, c, mx, my = total.minus(held_out).centred()
            with _one_thread():
                evals, evecs = torch.linalg.eigh(g)
            # Every penalty's weights at once, [d, n_lambdas]; then one pass over the fold.
            w = evecs @ ((evecs.T @ c)[:, None] / (evals.clamp_min(0)[:, None] + lam[None]))
            pred = ((x[rows] - mx.float()) @ w.float() + my).clamp(0, 1)
            sse += ((pred - y[rows, None]) ** 2).sum(0).double().numpy()
        best = int(np.argmin(sse))
        penalty, cv_mse = lambdas[best], float(sse[best] / len(y))
    w, b = total.solve(float(penalty))
    return LinearFit(w.float(), b, float(penalty), cv_mse, "clip")


def _lbfgs(
    x: Tensor, y: Tensor, l2: float, start: Tensor | None = None, max_iter: int = 200
) -> Tensor:
    """Weights (with the intercept last) minimising soft-label cross-entropy + l2·|w|²."""
    params = (torch.zeros(x.shape[1] + 1) if start is None else start.clone()).requires_grad_()
    opt = torch.optim.LBFGS(
        [params], max_iter=max_iter, line_search_fn="strong_wolfe", tolerance_grad=1e-6
    )

    def closure() -> Tensor:
        opt.zero_grad()
        logits = x @ params[:-1] + params[-1]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        loss = loss + l2 * (params[:-1] ** 2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():  # callers may sit under no_grad (e.g. inside an eval loop)
        opt.step(closure)
    return params.detach()


def _fit_logistic(x: Tensor, y: Tensor, slices: list[slice], penalty: float | str) -> LinearFit:
    cv_mse = None
    if penalty == "auto":
        sse = np.zeros(len(L2_GRID))
        for rows in slices:
            keep = torch.ones(len(y), dtype=torch.bool)
            keep[rows] = False
            start = None
            for i, l2 in enumerate(sorted(L2_GRID, reverse=True)):  # strong to weak: warm starts
                start = _lbfgs(x[keep], y[keep], l2, start)
                pred = torch.sigmoid(x[rows] @ start[:-1] + start[-1])
                sse[len(L2_GRID) - 1 - i] += float(((pred - y[rows]) ** 2).sum())
        best = int(np.argmin(sse))
        penalty, cv_mse = L2_GRID[best], float(sse[best] / len(y))
    params = _lbfgs(x, y, float(penalty))
    return LinearFit(params[:-1], float(params[-1]), float(penalty), cv_mse, "sigmoid")
