"""Report section: fork tokens (papers: arXiv 2605.06241, 2506.01939, 2603.22446).

Example:
    >>> SECTION.name, SECTION.default
    ('forks', True)
"""

from __future__ import annotations

from typing import Any

from postlens.reporting.section import ReportContext, Section
from postlens.reporting.sections.common import pct, sequences
from postlens.viz import figures
from postlens.viz.html import esc, figure_div, table
from postlens.viz.tokens import token_view

SUMMARY_KEYS = (
    "n_sequences", "n_positions", "agreement", "top5_coverage", "n_forks", "mean_entropy_all",
    "mean_entropy_forks", "share_forks_in_top20_entropy", "share_entropy_below_001",
    "share_entropy_above_0672", "mean_kl",
)  # fmt: skip
FORK_COLUMNS = [
    "seq", "pos", "context", "token_base", "token_post", "entropy_base", "kl", "post_rank_in_base",
]  # fmt: skip


def _compute(ctx: ReportContext) -> Any:
    return ctx.family.forks(sequences(ctx), progress=False)


def _render(results: Any) -> str:
    summaries = results.summary()
    rows = [
        {"child": k, **{key: getattr(summaries[k], key) for key in SUMMARY_KEYS}} for k in results
    ]
    parts = [
        "<p class='muted'>Both models teacher-forced on completions sampled from each child. A fork is "
        "a position whose argmaxes differ (or whose JS divergence exceeds the threshold).</p>",
        table(rows),
        figure_div(figures.topk_coverage(results)),
        figure_div(figures.entropy_at_forks(results)),
    ]
    for name, r in results.items():
        top = r.forks().head(12)[FORK_COLUMNS].to_dict("records")
        parts.append(f"<h3>{esc(name)}: strongest forks</h3>{table(top, FORK_COLUMNS)}")
        parts.append(
            f"<details open><summary>{esc(name)}: token view (colour = KL)</summary>"
            f"{token_view(r.token_view(8))}</details>"
        )
    return "".join(parts)


def _sentences(results: Any) -> list[str]:
    s = results.summary()
    parts = [
        f"{c} agrees with the base's argmax at {pct(s[c].agreement)} of positions "
        f"(top-5 coverage of its choices {pct(s[c].top5_coverage)})"
        for c in results
    ]
    return ["Fork tokens, teacher-forced on each child's own samples: " + "; ".join(parts) + "."]


def _cards(results: Any, child: str) -> list[tuple[str, str]]:
    s = results[child].summary()
    return [
        ("agreement with the base", f"{s.agreement:.3f}"),
        ("top-5 coverage at disagreements", f"{s.top5_coverage:.3f}"),
    ]


SECTION = Section(
    name="forks",
    title="Fork tokens",
    compute=_compute,
    render=_render,
    sentences=_sentences,
    cards=_cards,
    cost="sampling n completions per prompt from each child, then two teacher-forced forwards",
)
