"""Fork tokens: where a post-trained model parts from its base (arXiv 2605.06241, 2506.01939).

Both models are teacher-forced on the same token sequences (usually completions sampled from the
post model) and compared at every completion position: entropy of each, KL(post‖base), JS,
argmaxes, and the rank of the post model's choice in the base distribution. Logits are reduced
batch by batch (`postlens.diffs.divergence`): memory does not grow with the corpus.

Definitions (after arXiv 2605.06241 and 2506.01939): **agreement** = share of positions whose argmaxes match; **top-k
coverage** = among disagreeing positions, share whose post argmax is in the base top-k; a
**fork** = a position whose argmaxes differ, or whose JS divergence exceeds ``js_threshold``
(ours: 0.1 nats, about a seventh of the maximum ln 2).

Example:
    >>> import postlens as pl
    >>> pair = pl.load("organism:base", rl="organism:rl").pair
    >>> seqs = sample_sequences(pair, ["Q: 12+34=?\\n"], n=4, max_new_tokens=24)
    >>> result = score_forks(pair, seqs, progress=False)
    >>> result.summary().n_sequences, list(result.forks().columns[:2])
    (4, ['seq', 'pos'])
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from postlens.data.batch import TokenBatch
from postlens.data.sequences import (
    Sequence,
    context_length,
    given_sequences,
    keep_shared,
    pad_batch,
    sample_sequences,
    sequences_for,
    shared_logits,
    truncate_to_context,
)
from postlens.diffs.divergence import position_stats, worth_compiling
from postlens.diffs.forks.result import STAT_COLUMNS, ForkConfig, ForkResult, ForkSummary
from postlens.errors import InputFileError, PostlensError
from postlens.pair import ModelPair
from postlens.progress import show_progress
from postlens.results.family import ByChild

__all__ = [  # the sequence helpers are re-exported: they are the inputs of fork scoring
    "ForkConfig",
    "ForkResult",
    "ForkSummary",
    "Sequence",
    "given_sequences",
    "sample_sequences",
    "score_forks",
    "sequences_for",
]
logger = logging.getLogger(__name__)


class NonFiniteError(PostlensError):
    """A model produced NaN or infinite logits: its statistics would be meaningless."""


Which = Literal["base", "post"]
WHICH: tuple[Which, ...] = ("base", "post")


def _scored_logits(
    pair: ModelPair, batch: TokenBatch, scored: torch.Tensor, buffers: dict[str, torch.Tensor]
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Both models' logits for the scored positions, and which of their rows to reduce.

    Where the backends can split the unembedding off (`Backend.final_hidden`), only the scored
    positions are unembedded, into contiguous rows of `buffers` reused across batches: the
    unembedding is most of the work with a large vocabulary, and prompt positions need none.
    Otherwise the full logits are flattened and the scored rows named.
    """
    found = [pair[w].final_hidden(batch.input_ids, batch.attention_mask) for w in WHICH]
    hidden = [h for h in found if h is not None]
    if len(hidden) == len(found):
        keep = scored.to(hidden[0].device)
        logits = []
        for w, h in zip(WHICH, hidden, strict=True):
            rows = h[keep]
            if w not in buffers or buffers[w].shape[0] < rows.shape[0]:
                buffers.pop(w, None)  # free the old buffer before allocating its successor
                vocab = pair[w].hf_model.config.vocab_size
                buffers[w] = torch.empty(rows.shape[0], vocab, dtype=rows.dtype, device=rows.device)
            logits.append(pair[w].unembed(rows, out=buffers[w]))
        return shared_logits(pair, logits), None
    logits = [pair.run(w, batch).logits.flatten(0, 1) for w in WHICH]
    rows = scored.flatten().nonzero().squeeze(-1).to(logits[0].device)
    return shared_logits(pair, logits), rows


def score_forks(
    pair: ModelPair,
    seqs: list[Sequence],
    config: ForkConfig | None = None,
    progress: bool | None = None,
) -> ForkResult:
    """Teacher-force both models on `seqs` and reduce every completion position to statistics.

    Where the two models' ids differ (`postlens.models.compat`), the distributions are compared over
    the shared ids, renormalised there, and a sequence is scored up to its first id that is
    not shared; the positions that excludes are counted in `ForkSummary.n_excluded`.
    """
    cfg = config or ForkConfig()
    seqs, excluded = keep_shared(pair, seqs)
    context = context_length(pair)
    if context:
        seqs = truncate_to_context(seqs, context)
    if not seqs:
        raise InputFileError("no sequence with at least one completion token to score")
    compiled = cfg.compile
    if compiled is None:
        n_positions = sum(len(s.completion_ids) for s in seqs)
        compiled = worth_compiling(n_positions * pair.base.hf_model.config.vocab_size)
    cols: dict[str, list[np.ndarray]] = {
        c: []
        for c in (
            *STAT_COLUMNS,
            "seq",
            "pos",
            "token",
            "top_base_ids",
            "top_base_p",
            "top_post_ids",
            "top_post_p",
        )
    }
    batches, buffers = range(0, len(seqs), cfg.batch_size), dict[str, torch.Tensor]()
    for start in tqdm(batches, desc="scoring forks", disable=not show_progress(progress)):
        chunk = seqs[start : start + cfg.batch_size]
        ids, mask, scored = pad_batch(pair, chunk)
        logits, logit_rows = _scored_logits(pair, TokenBatch(ids, mask, []), scored, buffers)
        stats = position_stats(logits[0], logits[1], cfg.top, compiled=compiled, rows=logit_rows)
        del logits  # the batch's logits go before the next batch's forward
        rows, cols_idx = scored.nonzero(as_tuple=True)
        _check_finite(stats, rows, cols_idx, chunk, start)
        for c in STAT_COLUMNS:
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
    return ForkResult(
        arrays, seqs, cfg, pair.chat.tokenizer, pair.base_spec.spec, pair.post_spec.spec, excluded
    )


def _check_finite(stats: Any, rows: torch.Tensor, cols: torch.Tensor, chunk: list[Sequence],
                  start: int) -> None:  # fmt: skip
    """Refuse NaN or infinite logits (a NaN weight, an fp16 overflow), naming the first position.

    A non-finite logit makes the entropy of that position non-finite, so checking the two
    entropies (one value per position) catches it without another pass over the vocabulary.
    """
    for which in ("base", "post"):
        bad = ~torch.isfinite(getattr(stats, f"entropy_{which}"))
        if bad.any():
            i = int(bad.nonzero()[0])
            seq, col = int(rows[i]), int(cols[i])
            pos = col - (len(chunk[seq].prompt_ids) - 1)
            raise NonFiniteError(
                f"the {which} model's logits are not finite at sequence {start + seq}, "
                f"completion token {pos} ({int(bad.sum())} position(s) in this batch): check its "
                "weights for NaN/inf (postlens weights) or compute in float32 (--dtype float32)"
            )


def forks_of_family(family: Any, inputs: Any, config: ForkConfig, progress: bool) -> ByChild:
    """``fam.forks``: `score_forks` for every child, on its own sequences.

    `inputs` are prompts (sampled with ``config.sample`` from each child) or the sequences
    ``fam.sample`` returned; by default the family's own problems.
    """
    seqs = family.sequences(inputs, config.sample)
    return ByChild(
        "forks", {c: score_forks(p, seqs[c], config, progress) for c, p in family.pairs.items()}
    )
