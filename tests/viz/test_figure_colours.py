"""A model keeps one colour across a figure's panels, so a legend drawn once names every panel."""

from __future__ import annotations

import pandas as pd

from postlens.viz import figures


class _Profile:
    def __init__(self, shift: float) -> None:
        self.shift = shift

    def to_frame(self) -> pd.DataFrame:
        keys = ("cosine_mean", "rel_norm_mean", "logit_lens_kl", "patch_recovered")
        return pd.DataFrame({"layer": [0, 1, 2], **{k: [self.shift] * 3 for k in keys}})


def _colours_by_name(fig) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for trace in fig.data:
        out.setdefault(trace.name, set()).add(trace.line.color)
    return out


def test_each_child_has_one_colour_in_every_panel_of_the_layer_profile():
    fig = figures.layer_profile({"sft": _Profile(0.1), "rl": _Profile(0.2)})
    colours = _colours_by_name(fig)
    assert all(len(c) == 1 for c in colours.values()), colours
    assert colours["sft"] != colours["rl"]
    assert sum(t.showlegend is not False for t in fig.data) == 2  # one legend entry per child


def test_the_passk_table_lists_models_in_the_legend_order():
    from postlens.diffs.passk.compute import PassAtKResult
    from postlens.reporting.sections.passk import SECTION

    curves = {"base": {1: 0.1, 2: 0.2}, "sft": {1: 0.3, 2: 0.4}, "rl": {1: 0.5, 2: 0.6}}
    correct = {m: [1] for m in curves}
    html = SECTION.render(PassAtKResult(curves=curves, correct=correct, n=2))
    head = html[html.index("<thead>") : html.index("</thead>")]
    assert head.index("base") < head.index("sft") < head.index("rl")
