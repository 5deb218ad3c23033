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


def test_the_json_states_every_interval_and_crossing_and_reads_back():
    """What `passk --json` and the report's JSON hold: the same bootstrap as the methods."""
    from postlens.diffs.passk.compute import BOOTSTRAP

    res = _result({"base": [1, 2, 3, 3, 2], "rl": [4, 4, 0, 4, 0], "sft": [4, 3, 4, 4, 4]})
    data = res.to_json()
    bands, crossings = res.intervals(**BOOTSTRAP), res.crossings(**BOOTSTRAP)
    assert data["bootstrap"] == BOOTSTRAP and set(data["crossings"]) == {"rl", "sft"}
    for m, band in bands.items():
        assert {int(k): tuple(v) for k, v in data["intervals"][m].items()} == band
    for m, c in crossings.items():
        assert data["crossings"][m] == {"k": c.k, "low": c.low, "high": c.high,
                                        "share_crossing": c.share_crossing}  # fmt: skip
    assert crossings["rl"] == res.crossing("rl", "base", **BOOTSTRAP)
    assert PassAtKResult.from_json(data).to_json() == data
    empty = PassAtKResult({"base": {1: 0.0}, "rl": {1: 0.0}}, {"base": [], "rl": []}, 1)
    assert empty.to_json()["intervals"] == {} and empty.to_json()["crossings"] == {}


def test_the_report_section_shows_the_intervals_and_says_where_the_base_catches_up():
    from postlens.reporting.sections.passk import SECTION

    res = _result({"base": [1, 2, 3, 3, 2], "rl": [4, 4, 0, 4, 0]})
    html = SECTION.render(res)
    lo, hi = res.intervals()["base"][1]
    assert f"[{lo:.3f}, {hi:.3f}]" in html and "bootstrap intervals over problems" in html
    (sentence,) = [s for s in SECTION.sentences(res) if "reaches" in s or "does not" in s]
    c = res.crossing("rl")
    assert sentence.startswith(f"base reaches rl at k = {c.k} (95% interval {c.low}-{c.high};")
