"""Fork tokens: where a post-trained model parts from its base (BRIEF.md §1).

Both models are teacher-forced on the same token sequences (usually completions sampled from the
post model) and compared at every completion position: entropy of each, KL(post‖base), JS,
argmaxes, and the rank of the post model's choice in the base distribution. Logits are reduced
batch by batch (`postlens.diffs.divergence`): memory does not grow with the corpus.

Definitions (BRIEF.md §1): **agreement** = share of positions whose argmaxes match; **top-k
coverage** = among disagreeing positions, share whose post argmax is in the base top-k; a
**fork** = a position whose argmaxes differ, or whose JS divergence exceeds ``js_threshold``
(ours: 0.1 nats, about a seventh of the maximum ln 2).

Example:
    >>> seqs = sample_sequences(pair, ["Q: 12+34=?\\n"], n=4)  # doctest: +SKIP
    >>> result = score_forks(pair, seqs)  # doctest: +SKIP
    >>> result.summary["agreement"], result.forks().head()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from postlens.batch import TokenBatch
from postlens.diffs.divergence import position_stats
from postlens.diffs.sequences import (
    Sequence,
    context_length,
    given_sequences,
    pad_batch,
    sample_sequences,
    sequences_for,
    truncate_to_context,
)
from postlens.pair import ModelPair

__all__ = [  # the sequence helpers are re-exported: they are the inputs of fork scoring
    "ForkConfig",
    "ForkResult",
    "Sequence",
    "given_sequences",
    "sample_sequences",
    "score_forks",
    "sequences_for",
]
logger = logging.getLogger(__name__)
WHICH = ("base", "post")
LOW_ENTROPY, HIGH_ENTROPY = 0.01, 0.672  # nats, the thresholds quoted in BRIEF.md §1
#: Positions × vocabulary above which `ForkConfig(compile=None)` fuses the statistics: the
#: fused kernel saves ~15-20 ns per entry on CPU, the compilation costs ~4-8 s once.
COMPILE_ABOVE = 3e8


@dataclass(frozen=True)
class ForkConfig:
    """Settings of fork scoring.

    Attributes:
        js_threshold: JS divergence (nats) above which a position counts as a fork even when
            the argmaxes agree.
        batch_size: sequences per forward pass.
        top: how many top tokens of each model to keep per position (for the token view).
        compile: fuse the per-position reductions with `torch.compile`. ``None`` (default)
            decides by size: on when positions × vocabulary reaches `COMPILE_ABOVE`, where the
            one-off compilation (a few seconds) is repaid; it falls back to eager on failure.
    """

    js_threshold: float = 0.1
    batch_size: int = 16
    top: int = 5
    compile: bool | None = None

    def __post_init__(self) -> None:
        if not 0 < self.js_threshold <= math.log(2):
            raise ValueError(f"js_threshold must be in (0, ln 2 = {math.log(2):.4f}]")
        if self.batch_size < 1 or self.top < 1:
            raise ValueError("batch_size and top must be positive")


def _share(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if mask.size else None


_COLUMNS = (
    "entropy_base", "entropy_post", "kl", "js", "argmax_base", "argmax_post", "post_rank_in_base",
    "p_base_of_base", "p_base_of_post", "p_post_of_base", "p_post_of_post",
)  # fmt: skip


def _scored_logits(
    pair: ModelPair, batch: TokenBatch, scored: torch.Tensor, buffers: dict[str, torch.Tensor]
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Both models' logits for the scored positions, and which of their rows to reduce.

    Where the backends can split the unembedding off (`Backend.final_hidden`), only the scored
    positions are unembedded, into contiguous rows of `buffers` reused across batches: the
    unembedding is most of the work with a large vocabulary, and prompt positions need none.
    Otherwise the full logits are flattened and the scored rows named.
    """
    hidden = [pair[w].final_hidden(batch.input_ids, batch.attention_mask) for w in WHICH]
    if all(h is not None for h in hidden):
        keep = scored.to(hidden[0].device)
        logits = []
        for w, h in zip(WHICH, hidden, strict=True):
            rows = h[keep]
            if w not in buffers or buffers[w].shape[0] < rows.shape[0]:
                buffers.pop(w, None)  # free the old buffer before allocating its successor
                vocab = pair[w].hf_model.config.vocab_size
                buffers[w] = torch.empty(rows.shape[0], vocab, dtype=rows.dtype, device=rows.device)
            logits.append(pair[w].unembed(rows, out=buffers[w]))
        return logits, None
    logits = [pair.run(w, batch).logits.flatten(0, 1) for w in WHICH]
    return logits, scored.flatten().nonzero().squeeze(-1).to(logits[0].device)


def score_forks(
    pair: ModelPair, seqs: list[Sequence], config: ForkConfig | None = None, progress: bool = True
) -> ForkResult:
    """Teacher-force both models on `seqs` and reduce every completion position to statistics."""
    cfg = config or ForkConfig()
    context = context_length(pair)
    if context:
        seqs = truncate_to_context(seqs, context)
    if not seqs:
        raise ValueError("no sequence with at least one completion token to score")
    compiled = cfg.compile
    if compiled is None:
        n_positions = sum(len(s.completion_ids) for s in seqs)
        compiled = n_positions * pair.base.hf_model.config.vocab_size >= COMPILE_ABOVE
    cols: dict[str, list[np.ndarray]] = {
        c: []
        for c in (
            *_COLUMNS,
            "seq",
            "pos",
            "token",
            "top_base_ids",
            "top_base_p",
            "top_post_ids",
            "top_post_p",
        )
    }
    batches, buffers = range(0, len(seqs), cfg.batch_size), {}
    for start in tqdm(batches, desc="scoring forks", disable=not progress):
        chunk = seqs[start : start + cfg.batch_size]
        ids, mask, scored = pad_batch(pair, chunk)
        logits, logit_rows = _scored_logits(pair, TokenBatch(ids, mask, []), scored, buffers)
        stats = position_stats(*logits, cfg.top, compiled=compiled, rows=logit_rows)
        del logits  # the batch's logits go before the next batch's forward
        rows, cols_idx = scored.nonzero(as_tuple=True)
        for c in _COLUMNS:
            cols[c].append(getattr(stats, c).cpu().numpy())
        for c in ("top_base_ids", "top_base_p", "top_post_ids", "top_post_p"):
            cols[c].append(getattr(stats, c).cpu().numpy())
        cols["seq"].append(rows.numpy() + start)
        cols["pos"].append(
            cols_idx.numpy()
            - np.array([len(chunk[r].prompt_ids) - 1 for r in rows.tolist()], dtype=np.int64)
        )
        cols["token"].append(ids[rows, cols_idx + 1].numpy())
    arrays = {k: np.concatenate(v) for k, v in cols.items()}
    return ForkResult(arrays, seqs, cfg, pair.tokenizer, pair.base_spec.spec, pair.post_spec.spec)


@dataclass
class ForkResult:
    """Per-position statistics of a scored corpus, and the BRIEF.md §1 summary.

    Attributes:
        columns: one array per statistic, one entry per scored position (``seq`` and ``pos``
            index the sequence and the completion token; ``token`` is the token that follows).
        sequences: the scored sequences.
        config: the settings used.
    """

    columns: dict[str, np.ndarray]
    sequences: list[Sequence]
    config: ForkConfig
    tokenizer: Any = field(repr=False)
    base: str = ""
    post: str = ""

    @property
    def is_fork(self) -> np.ndarray:
        c = self.columns
        return (c["argmax_base"] != c["argmax_post"]) | (c["js"] > self.config.js_threshold)

    @property
    def summary(self) -> dict[str, Any]:
        """Agreement, top-k coverage, entropy at forks vs overall, entropy distribution."""
        c, forks = self.columns, self.is_fork
        disagree = c["argmax_base"] != c["argmax_post"]
        h = c["entropy_base"]
        q80 = float(np.quantile(h, 0.8))
        ranks = c["post_rank_in_base"][disagree]
        coverage = {
            str(k): float((ranks <= k).mean()) if disagree.any() else 1.0 for k in range(1, 11)
        }
        per_seq = np.bincount(c["seq"][forks], minlength=len(self.sequences))
        mean_all, mean_forks = float(h.mean()), float(h[forks].mean()) if forks.any() else None
        return {
            "n_sequences": len(self.sequences),
            "n_positions": int(h.size),
            "agreement": float((~disagree).mean()),
            "topk_coverage": coverage,
            "n_forks": int(forks.sum()),
            "fork_rate": float(forks.mean()),
            "mean_entropy_all": mean_all,
            "mean_entropy_forks": mean_forks,
            "entropy_ratio_forks_vs_all": (mean_forks / mean_all)
            if mean_forks is not None and mean_all > 0
            else None,
            "share_forks_in_top20_entropy": float((h[forks] >= q80).mean())
            if forks.any()
            else None,
            # With mostly near-zero entropies the 80th percentile is itself tiny, so also give
            # the share of forks above the absolute 0.672-nat mark, and the argmax-only view.
            "share_forks_entropy_above_0.672": _share(h[forks] > HIGH_ENTROPY),
            "mean_entropy_disagreements": float(h[disagree].mean()) if disagree.any() else None,
            "share_entropy_below_0.01": float((h < LOW_ENTROPY).mean()),
            "share_entropy_above_0.672": float((h > HIGH_ENTROPY).mean()),
            "mean_kl": float(c["kl"].mean()),
            "mean_js": float(c["js"].mean()),
            "forks_per_sequence": per_seq.tolist(),
            "js_threshold": self.config.js_threshold,
        }

    def _decode(self, ids: np.ndarray) -> list[str]:
        return [self.tokenizer.decode([int(i)]) for i in ids]

    def to_frame(self, context: int = 8) -> Any:
        """One row per scored position, with decoded tokens and the preceding context."""
        import pandas as pd

        c = self.columns
        frame = pd.DataFrame({k: c[k] for k in ("seq", "pos", *_COLUMNS)})
        frame["token"] = self._decode(c["token"])
        frame["token_base"] = self._decode(c["argmax_base"])
        frame["token_post"] = self._decode(c["argmax_post"])
        frame["fork"] = self.is_fork
        frame["context"] = [
            self._context(int(s), int(p), context) for s, p in zip(c["seq"], c["pos"], strict=True)
        ]
        return frame

    def _context(self, seq: int, pos: int, width: int) -> str:
        s = self.sequences[seq]
        full = s.prompt_ids + s.completion_ids[:pos]
        return self.tokenizer.decode(full[-width:], skip_special_tokens=True)

    def forks(self) -> Any:
        """The fork positions, most divergent (KL) first."""
        frame = self.to_frame()
        return frame[frame["fork"]].sort_values("kl", ascending=False).reset_index(drop=True)

    def to_json(self, max_forks: int = 200) -> dict[str, Any]:
        """The summary and the top forks, in the schema of ``postlens forks --json``."""
        rows = self.forks().head(max_forks)
        keys = (
            "seq",
            "pos",
            "token_base",
            "token_post",
            "entropy_base",
            "entropy_post",
            "kl",
            "js",
            "post_rank_in_base",
        )
        forks = [
            {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items() if k in keys}
            for r in rows.to_dict("records")
        ]
        return {"base": self.base, "post": self.post, **self.summary, "forks": forks}

    def token_view(self, max_sequences: int = 12) -> list[dict[str, Any]]:
        """Per-token data for `postlens.viz.tokens.token_view` (first `max_sequences`)."""
        c, forks = self.columns, self.is_fork
        out = []
        for seq in range(min(max_sequences, len(self.sequences))):
            idx = np.nonzero(c["seq"] == seq)[0]
            tokens = [
                {
                    "text": self.tokenizer.decode([int(c["token"][i])]),
                    "kl": float(c["kl"][i]),
                    "entropy_base": float(c["entropy_base"][i]),
                    "fork": bool(forks[i]),
                    "top_base": [
                        [self.tokenizer.decode([int(t)]), float(p)]
                        for t, p in zip(c["top_base_ids"][i], c["top_base_p"][i], strict=True)
                    ],
                    "top_post": [
                        [self.tokenizer.decode([int(t)]), float(p)]
                        for t, p in zip(c["top_post_ids"][i], c["top_post_p"][i], strict=True)
                    ],
                }
                for i in idx
            ]
            prompt = self.tokenizer.decode(self.sequences[seq].prompt_ids, skip_special_tokens=True)
            out.append(
                {
                    "label": f"sequence {seq} ({self.sequences[seq].source})",
                    "prompt": prompt,
                    "tokens": tokens,
                }
            )
        return out

    def _repr_html_(self) -> str:
        from postlens.viz.html import esc, table

        s = self.summary
        head = (
            f"<b>forks {esc(self.base)} → {esc(self.post)}</b>: agreement {s['agreement']:.3f}, "
            f"top-5 coverage {s['topk_coverage']['5']:.3f}, {s['n_forks']} forks in {s['n_positions']} positions"
        )
        cols = ["seq", "pos", "context", "token_base", "token_post", "entropy_base", "kl"]
        return f"<div>{head}{table(self.forks().head(10)[cols].to_dict('records'), cols)}</div>"
