"""Benchmark: fitting a confidence probe on tens of thousands of activations on the CPU.

Measures, in one run on the same synthetic data (a planted linear signal through a logistic link; labels are pass rates of 8 samples):

(a) floor: one Gram matrix ``x.T @ x`` in float64 (the least any least-squares fit must do);
(b) postlens ridge, fixed penalty: ``ConfidenceProbe.fit(..., ridge=1.0)``;
(c) postlens ridge, penalty by 5-fold grouped cross-validation over 13 values (the default);
(d) ``method="logistic"``, fixed L2 1e-4 (soft-label cross-entropy by L-BFGS);
(e) ``method="logistic"``, L2 by the same grouped CV (5 folds x 5 values, warm-started).

Reports wall seconds and held-out Pearson r with the true pass probabilities for each, at n rows x d features
and for each torch thread count (on a CPU shared with other jobs, one thread is often faster:
small BLAS calls on oversubscribed cores spin and wait).

Usage: ``python benchmarks/bench_probes.py [--rows 10000 50000] [--dims 128 1024] [--threads 1 2]``
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from postlens.probes.confidence.probe import ConfidenceProbe
from postlens.probes.provenance import Provenance


def data(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Activations, true pass probabilities (a logistic link: the case logistic regression is
    built for), and labels as the real ones are: pass rates of 8 samples."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g) * torch.linspace(0.2, 3, d)  # uneven feature scales
    w = torch.randn(d, generator=g) / d**0.5
    p = torch.sigmoid(2 * ((x / torch.linspace(0.2, 3, d)) @ w))
    return x, p, torch.binomial(torch.full_like(p, 8.0), p, generator=g) / 8


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.float(), b.float()]))[0, 1])


def timed(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    for threads in args.threads:
        torch.set_num_threads(threads)
        run(args.rows, args.dims, threads)


def run(all_rows: list[int], dims: list[int], threads: int) -> None:
    for d in dims:
        for n in all_rows:
            x, p, rate = data(n + 5000, d)
            xtr, ytr, xte, yte = x[:n], rate[:n], x[n:], p[n:]  # tested on the true rates
            prov = Provenance("synthetic", 0, "blocks.0.hook_resid_post", d, 1, "")
            groups = torch.arange(n) // 6  # six cuts per trace, as in real trajectories
            xd = xtr.double()
            _, floor = timed(torch.matmul, xd.T, xd)
            fixed, t_fixed = timed(ConfidenceProbe.fit, xtr, ytr, prov, ridge=1.0)
            auto, t_auto = timed(ConfidenceProbe.fit, xtr, ytr, prov, groups=groups.numpy())
            logistic, t_lbfgs = timed(
                ConfidenceProbe.fit, xtr, ytr, prov, ridge=1e-4, method="logistic"
            )
            logistic_cv, t_lbfgs_cv = timed(
                ConfidenceProbe.fit, xtr, ytr, prov, groups=groups.numpy(), method="logistic"
            )
            row = {
                "threads": threads,
                "rows": n,
                "d": d,
                "floor_gram_s": round(floor, 3),
                "ridge_fixed_s": round(t_fixed, 3),
                "ridge_cv_s": round(t_auto, 3),
                "logistic_s": round(t_lbfgs, 3),
                "logistic_cv_s": round(t_lbfgs_cv, 3),
                "r_ridge_fixed": round(pearson(fixed.predict(xte), yte), 4),
                "r_ridge_cv": round(pearson(auto.predict(xte), yte), 4),
                "r_logistic": round(pearson(logistic.predict(xte), yte), 4),
                "r_logistic_cv": round(pearson(logistic_cv.predict(xte), yte), 4),
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
