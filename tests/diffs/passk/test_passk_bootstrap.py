"""Bootstrap intervals of pass@k and of the crossing k."""

from __future__ import annotations

from postlens.diffs.passk.bootstrap import crossing_interval, crossing_k
from postlens.diffs.passk.compute import PassAtKResult, pass_at_k


def _result(correct, n=4, ks=(1, 2, 4)):
    curves = {
        m: {k: sum(pass_at_k(n, c, k) for c in cs) / len(cs) for k in ks}
        for m, cs in correct.items()
    }
    return PassAtKResult(curves, correct, n)


def test_intervals_hold_the_point_estimate_and_shrink_to_it_when_problems_agree():
    res = _result({"base": [0, 1, 2, 4, 3, 1], "rl": [4, 4, 4, 0, 4, 4]})
    bands = res.intervals(n_boot=300, seed=0)
    for m, curve in res.curves.items():
        for k, v in curve.items():
            lo, hi = bands[m][k]
            assert lo <= v + 1e-9 and v <= hi + 1e-9
    flat = _result({"m": [2, 2, 2, 2]}).intervals(n_boot=100)["m"][1]
    assert flat == (0.5, 0.5)


def test_crossing_k_and_its_interval():
    assert crossing_k([0.1, 0.2], [0.5, 0.6], [1, 2]) is None
    correct = {"base": [1, 2, 3, 3, 2], "rl": [4, 4, 0, 4, 0]}
    c = crossing_interval(correct, 4, [1, 2, 4], "base", "rl", n_boot=300, seed=1)
    assert c.k is not None and c.low <= c.k <= c.high and 0 < c.share_crossing <= 1
    assert _result(correct).crossing("rl", n_boot=300, seed=1) == c
    assert _result(correct).plot_intervals(n_boot=50).data
