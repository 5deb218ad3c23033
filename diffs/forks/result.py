"""The settings and the result of fork scoring: per-position statistics, summary, views, JSON.

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", rl="organism:rl")
    >>> forks = fam.forks(["Q: 12+34=?"], ForkConfig(sample=pl.SampleConfig(n=2, max_new_tokens=24)))["rl"]
    >>> s = forks.summary()
    >>> 0 <= s.agreement <= 1 and s.n_positions > 0
    True
    >>> type(pl.Result.from_json(forks.to_json())).__name__
    'ForkResult'
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from postlens.data.sequences import Sequence
from postlens.errors import ConfigError
from postlens.results.protocol import Result, summary_dict
from postlens.results.token_table import TokenTable
from postlens.sampling.generation import SampleConfig

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer

LOW_ENTROPY, HIGH_ENTROPY = 0.01, 0.672  # nats, the thresholds quoted in the papers
#: The per-position statistics of `postlens.diffs.divergence.position_stats`, one value each.
STAT_COLUMNS = (
    "entropy_base", "entropy_post", "kl", "js", "argmax_base", "argmax_post", "post_rank_in_base",
    "p_base_of_base", "p_base_of_post", "p_post_of_base", "p_post_of_post",
)  # fmt: skip
#: Every stored column, by type (the top-k columns have one row of k values per position).
FLOAT_COLUMNS = (
    "entropy_base", "entropy_post", "kl", "js", "p_base_of_base", "p_base_of_post",
    "p_post_of_base", "p_post_of_post", "top_base_p", "top_post_p",
)  # fmt: skip
INT_COLUMNS = (
    "argmax_base", "argmax_post", "post_rank_in_base", "seq", "pos", "token", "top_base_ids",
    "top_post_ids",
)  # fmt: skip
FORK_KEYS = (
    "seq", "pos", "token_base", "token_post", "entropy_base", "entropy_post", "kl", "js",
    "post_rank_in_base",
)  # fmt: skip


@dataclass(frozen=True)
class ForkConfig:
    """Settings of fork scoring.

    Attributes:
        js_threshold: JS divergence (nats) above which a position counts as a fork even when
            the argmaxes agree.
        batch_size: sequences per forward pass.
        top: how many top tokens of each model to keep per position (for the token view).
        compile: fuse the per-position reductions with `torch.compile`. ``None`` (default)
            decides by size: on when positions × vocabulary reaches `divergence.COMPILE_ABOVE`, where the
            one-off compilation (a few seconds) is repaid; it falls back to eager on failure.
        sample: how completions are sampled when the inputs are prompts.
    """

    js_threshold: float = 0.1
    batch_size: int = 16
    top: int = 5
    compile: bool | None = None
    sample: SampleConfig = field(default_factory=SampleConfig)

    def __post_init__(self) -> None:
        if not 0 < self.js_threshold <= math.log(2):
            raise ConfigError(
                f"js_threshold must be in (0, ln 2 = {math.log(2):.4f}], got {self.js_threshold}"
            )
        if self.batch_size < 1 or self.top < 1:
            raise ConfigError(
                f"batch_size and top must be positive (got {self.batch_size}, {self.top})"
            )


@dataclass(frozen=True)
class ForkSummary:
    """The fork figures of one pair (definitions in `postlens.diffs.forks.compute`).

    Attributes:
        n_sequences: sequences scored.
        n_positions: completion positions scored.
        agreement: share of positions whose argmaxes match.
        top5_coverage: among disagreements, share whose post argmax is in the base top-5.
        topk_coverage: the same for k = 1..10.
        n_forks: fork positions (argmaxes differ, or JS above the threshold).
        fork_rate: n_forks / n_positions.
        mean_entropy_all: the base's mean entropy (nats) over all positions.
        mean_entropy_forks: ... over the forks (``None`` without forks).
        entropy_ratio_forks_vs_all: the ratio of those two means.
        share_forks_in_top20_entropy: share of forks in the base's top-20% entropy quantile.
        share_forks_entropy_above_0672: share of forks where the base entropy exceeds 0.672 nats
            (with mostly near-zero entropies the 80th percentile is itself tiny).
        mean_entropy_disagreements: the base's mean entropy where the argmaxes differ.
        share_entropy_below_001: share of all positions with base entropy below 0.01 nats.
        share_entropy_above_0672: share of all positions with base entropy above 0.672 nats.
        mean_kl: mean KL(post‖base) per position (nats).
        mean_js: mean Jensen–Shannon divergence per position (nats).
        js_threshold: the JS threshold used.
        n_excluded: completion positions left out because their token (or an earlier one of
            the sequence) is an id only one model has (`postlens.models.compat`); 0 when all are shared.
    """

    n_sequences: int
    n_positions: int
    agreement: float
    top5_coverage: float
    topk_coverage: dict[int, float]
    n_forks: int
    fork_rate: float
    mean_entropy_all: float
    mean_entropy_forks: float | None
    entropy_ratio_forks_vs_all: float | None
    share_forks_in_top20_entropy: float | None
    share_forks_entropy_above_0672: float | None
    mean_entropy_disagreements: float | None
    share_entropy_below_001: float
    share_entropy_above_0672: float
    mean_kl: float
    mean_js: float
    js_threshold: float
    n_excluded: int = 0

    @property
    def coverage_text(self) -> str:
        """`top5_coverage` for display: a share, or a dash when the models never disagree (the
        share of no disagreements is undefined; the field keeps 1.0 for plots and sums).

        Example:
            >>> import dataclasses
            >>> s = ForkSummary(1, 10, 1.0, 1.0, {}, 0, 0.0, 0.5, None, None, None, None, None,
            ...                 0.0, 0.0, 0.0, 0.0, 0.05)
            >>> s.coverage_text
            '– (no disagreements)'
        """
        return f"{self.top5_coverage:.3f}" if self.agreement < 1 else "– (no disagreements)"


def _share(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if mask.size else None


def _mean(x: np.ndarray) -> float | None:
    return float(x.mean()) if x.size else None


@dataclass
class ForkResult(Result[ForkSummary], kind="forks"):
    """Per-position statistics of a scored corpus, and their summary (see docs/science.md).

    Attributes:
        columns: one array per statistic, one entry per scored position (``seq`` and ``pos``
            index the sequence and the completion token; ``token`` is the token that follows).
        sequences: the scored sequences.
        config: the settings used (a `ForkConfig`).
        tokenizer: the pair's tokenizer, or a `TokenTable` when read from JSON.
        base: the base model's spec.
        post: the post model's spec.
        excluded: completion positions not scored (ids only one model has).
    """

    columns: dict[str, np.ndarray]
    sequences: list[Sequence]
    config: Any
    tokenizer: Tokenizer | TokenTable = field(repr=False)
    base: str = ""
    post: str = ""
    excluded: int = 0

    @property
    def is_fork(self) -> np.ndarray:
        c = self.columns
        return (c["argmax_base"] != c["argmax_post"]) | (c["js"] > self.config.js_threshold)

    def summary(self) -> ForkSummary:
        """Agreement, top-k coverage, entropy at forks vs overall, entropy distribution."""
        c, forks = self.columns, self.is_fork
        disagree = c["argmax_base"] != c["argmax_post"]
        h = c["entropy_base"]
        ranks = c["post_rank_in_base"][disagree]
        coverage = {k: float((ranks <= k).mean()) if disagree.any() else 1.0 for k in range(1, 11)}
        mean_all, mean_forks = float(h.mean()), _mean(h[forks])
        ratio = mean_forks / mean_all if mean_forks is not None and mean_all > 0 else None
        q80 = float(np.quantile(h, 0.8))
        return ForkSummary(
            n_sequences=len(self.sequences),
            n_positions=int(h.size),
            agreement=float((~disagree).mean()),
            top5_coverage=coverage[5],
            topk_coverage=coverage,
            n_forks=int(forks.sum()),
            fork_rate=float(forks.mean()),
            mean_entropy_all=mean_all,
            mean_entropy_forks=mean_forks,
            entropy_ratio_forks_vs_all=ratio,
            share_forks_in_top20_entropy=_share(h[forks] >= q80),
            share_forks_entropy_above_0672=_share(h[forks] > HIGH_ENTROPY),
            mean_entropy_disagreements=_mean(h[disagree]),
            share_entropy_below_001=float((h < LOW_ENTROPY).mean()),
            share_entropy_above_0672=float((h > HIGH_ENTROPY).mean()),
            mean_kl=float(c["kl"].mean()),
            mean_js=float(c["js"].mean()),
            js_threshold=self.config.js_threshold,
            n_excluded=self.excluded,
        )

    def forks_per_sequence(self) -> list[int]:
        """How many forks each sequence has."""
        counts = np.bincount(self.columns["seq"][self.is_fork], minlength=len(self.sequences))
        return counts.tolist()

    def _decode(self, ids: np.ndarray) -> list[str]:
        return [str(self.tokenizer.decode([int(i)])) for i in ids]

    def to_frame(self, context: int = 8) -> Any:
        """One row per scored position, with decoded tokens and the preceding context."""
        return self._frame(np.arange(self.columns["seq"].size), context)

    def _frame(self, rows: np.ndarray, context: int = 8) -> Any:
        """`to_frame`'s rows at the positions `rows` only (decoding is most of its cost)."""
        import pandas as pd

        c = self.columns
        frame = pd.DataFrame({k: c[k][rows] for k in ("seq", "pos", *STAT_COLUMNS)})
        frame["token"] = self._decode(c["token"][rows])
        frame["token_base"] = self._decode(c["argmax_base"][rows])
        frame["token_post"] = self._decode(c["argmax_post"][rows])
        frame["fork"] = self.is_fork[rows]
        frame["context"] = [
            self._context(int(s), int(p), context)
            for s, p in zip(c["seq"][rows], c["pos"][rows], strict=True)
        ]
        return frame

    def _context(self, seq: int, pos: int, width: int) -> str:
        s = self.sequences[seq]
        full = s.prompt_ids + s.completion_ids[:pos]
        return str(self.tokenizer.decode(full[-width:], skip_special_tokens=True))

    def forks(self) -> Any:
        """The fork positions, most divergent (KL) first."""
        return self._frame(self._forks_by_kl())  # only the forks are decoded

    def _forks_by_kl(self) -> np.ndarray:
        """The fork rows, most divergent (KL) first; equal KLs keep their order."""
        rows = np.flatnonzero(self.is_fork)
        return rows[np.argsort(-self.columns["kl"][rows], kind="stable")]

    def to_json(self, max_forks: int = 200) -> dict[str, Any]:
        """Summary, top forks, and every position's figures (schema of ``postlens forks --json``).

        Every figure is stored exactly; so are the token strings of every id used, so
        `from_json` needs no tokenizer.
        """
        c = self.columns
        # Built from the columns directly (no data frame): pandas' import alone costs a
        # one-shot command a third of a second.
        rows = self._forks_by_kl()[:max_forks]
        decoded = {"token_base": self._decode(c["argmax_base"][rows]),
                   "token_post": self._decode(c["argmax_post"][rows])}  # fmt: skip
        forks = [
            {k: decoded[k][i] if k in decoded else c[k][r].item() for k in FORK_KEYS}
            for i, r in enumerate(rows)
        ]
        positions = {k: _floats(c[k]) for k in FLOAT_COLUMNS} | {
            k: c[k].tolist() for k in INT_COLUMNS
        }
        ids = [i for s in self.sequences for i in (*s.prompt_ids, *s.completion_ids)]
        ids += [int(i) for k in ("argmax_base", "argmax_post", "top_base_ids", "top_post_ids") for i in c[k].ravel()]  # fmt: skip
        return {
            "kind": self.kind,
            "base": self.base,
            "post": self.post,
            "config": dataclasses.asdict(self.config),
            "summary": _json_summary(self.summary()),
            "forks_per_sequence": self.forks_per_sequence(),
            "forks": forks,
            "positions": positions,
            "sequences": [dataclasses.asdict(s) for s in self.sequences],
            "tokens": TokenTable.of(self.tokenizer, ids).to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ForkResult:
        pos = data["positions"]
        columns = {k: np.asarray(pos[k], dtype=np.float32) for k in FLOAT_COLUMNS} | {
            k: np.asarray(pos[k], dtype=np.int64) for k in INT_COLUMNS
        }
        seqs = [Sequence(**s) for s in data["sequences"]]
        table = TokenTable.from_json(data["tokens"])
        excluded = data["summary"].get("n_excluded", 0)
        return cls(
            columns, seqs, ForkConfig(**data["config"]), table, data["base"], data["post"], excluded
        )

    def token_view(self, max_sequences: int = 12) -> list[dict[str, Any]]:
        """Per-token data for `postlens.viz.tokens.token_view` (first `max_sequences`)."""
        c, forks, dec = self.columns, self.is_fork, self.tokenizer.decode
        out = []
        for seq in range(min(max_sequences, len(self.sequences))):
            tokens = [
                {
                    "text": dec([int(c["token"][i])]),
                    "kl": float(c["kl"][i]),
                    "entropy_base": float(c["entropy_base"][i]),
                    "fork": bool(forks[i]),
                    "top_base": _top(dec, c["top_base_ids"][i], c["top_base_p"][i]),
                    "top_post": _top(dec, c["top_post_ids"][i], c["top_post_p"][i]),
                }
                for i in np.nonzero(c["seq"] == seq)[0]
            ]
            s = self.sequences[seq]
            prompt = self.tokenizer.decode(s.prompt_ids, skip_special_tokens=True)
            out.append(
                {"label": f"sequence {seq} ({s.source})", "prompt": prompt, "tokens": tokens}
            )
        return out

    def plot(self) -> Any:
        """The base entropy at all positions and at forks (histograms)."""
        from postlens.viz import figures

        return figures.entropy_at_forks({self.post or "post": self})

    @classmethod
    def plot_children(cls, results: Mapping[str, Result]) -> Any:
        """Top-k coverage of each child's choices at its disagreements with the base."""
        from postlens.viz import figures

        return figures.topk_coverage(results)

    def _repr_html_(self) -> str:
        from postlens.viz.html import esc, table

        s = self.summary()
        head = (
            f"<b>forks {esc(self.base)} → {esc(self.post)}</b>: agreement {s.agreement:.3f}, "
            f"top-5 coverage {s.top5_coverage:.3f}, {s.n_forks} forks in {s.n_positions} positions"
        )
        cols = ["seq", "pos", "context", "token_base", "token_post", "entropy_base", "kl"]
        return f"<div>{head}{table(self.forks().head(10)[cols].to_dict('records'), cols)}</div>"


def _top(decode: Any, ids: np.ndarray, probs: np.ndarray) -> list[list[Any]]:
    return [[decode([int(t)]), float(p)] for t, p in zip(ids, probs, strict=True)]


def _floats(x: np.ndarray) -> list[Any]:
    """A float32 array as nested lists of the shortest decimals that read back to the same
    float32 values (half the characters of float64 reprs); NaN and ±inf as ``None``."""
    flat = [float(str(v)) if np.isfinite(v) else None for v in x.astype(np.float32).ravel()]
    return np.array(flat, dtype=object).reshape(x.shape).tolist()


def _json_summary(summary: ForkSummary) -> dict[str, Any]:
    out = summary_dict(summary)
    out["topk_coverage"] = {str(k): v for k, v in summary.topk_coverage.items()}
    return out
