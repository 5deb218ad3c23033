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
        top = strongest_disagreements(r.forks())
        parts.append(
            f"<h3>{esc(name)}: strongest disagreements</h3>"
            f"{table(top.to_dict('records'), [*FORK_COLUMNS, 'times'])}"
        )
        parts.append(
            f"<details open><summary>{esc(name)}: token view (colour = KL)</summary>"
            f"{token_view(r.token_view(8))}</details>"
        )
    return "".join(parts)


def strongest_disagreements(forks: Any, n: int = 12) -> Any:
    """The `n` most divergent forks where the two models' argmaxes differ, each distinct
    (context, base token, post token) once with how many times it occurred (sampled sequences
    repeat; a fork by divergence alone, same argmax, is left out of this list).

    Example:
        >>> import pandas as pd
        >>> f = pd.DataFrame({"seq": [0, 1, 2], "pos": [3, 3, 4], "context": ["a", "a", "b"],
        ...     "token_base": ["x", "x", "y"], "token_post": ["z", "z", "y"], "entropy_base": [1.0] * 3,
        ...     "kl": [2.0, 2.0, 3.0], "post_rank_in_base": [1, 1, 0]})
        >>> strongest_disagreements(f)[["seq", "times"]].values.tolist()
        [[0, 2]]
    """
    differ = forks[forks.token_base != forks.token_post]
    key = ["context", "token_base", "token_post"]
    times = differ.groupby(key, sort=False)["kl"].transform("size")
    out = differ.assign(times=times).drop_duplicates(key).head(n)
    return out[[*FORK_COLUMNS, "times"]]


def _sentences(results: Any) -> list[str]:
    s = results.summary()
    parts = [
        f"{c} agrees with the base's argmax at {pct(s[c].agreement)} of positions "
        + (
            f"(top-5 coverage of its choices {pct(s[c].top5_coverage)})"
            if s[c].agreement < 1
            else "(they never disagree)"
        )
        for c in results
    ]
    return ["Fork tokens, teacher-forced on each child's own samples: " + "; ".join(parts) + "."]


def _cards(results: Any, child: str) -> list[tuple[str, str]]:
    s = results[child].summary()
    return [
        ("agreement with the base", f"{s.agreement:.3f}"),
        ("top-5 coverage at disagreements", s.coverage_text),
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
