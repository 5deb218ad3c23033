"""Report section: fork-targeted training (off by default: it trains copies of the base).

Example:
    >>> SECTION.name, SECTION.default
    ('fork_train', False)
"""

from __future__ import annotations

from typing import Any

from postlens.reporting.section import ReportContext, Section
from postlens.reporting.sections.common import capped
from postlens.reporting.sections.steer import _unavailable
from postlens.viz import causal_figures
from postlens.viz.html import esc, figure_div, table


def _compute(ctx: ReportContext) -> Any:
    from postlens.diffs.causal.fork_training import ForkTrainConfig

    cfg = ForkTrainConfig(sample=capped(ForkTrainConfig().sample, ctx))
    return ctx.family.fork_train(config=cfg)


def _render(result: Any) -> str:
    parts = [figure_div(causal_figures.fork_train(result.results))]
    for child, res in result.results.items():
        parts.append(f"<h4>{esc(child)}</h4>" + table(res.to_frame().round(4).to_dict("records")))
    return "".join(parts)


def _sentences(result: Any) -> list[str]:
    out = []
    for child, res in result.results.items():
        s = res.summary()
        if s.recovered_forks is None:
            continue
        out.append(f"Training the base at {esc(child)}'s {s.n_forks} forks recovers "
                   f"{s.recovered_forks:.0%} of its pass@1 gain (random positions: "
                   f"{s.recovered_random:.0%}), mean over seeds.")  # fmt: skip
    return out


SECTION = Section(
    name="fork_train",
    title="Causal test: fork-targeted training",
    compute=_compute,
    render=_render,
    sentences=_sentences,
    unavailable=_unavailable,
    default=False,
    cost="per child and seed, two trained copies of the base, each sampling limit × n_eval",
)
