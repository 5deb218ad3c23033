"""The token sequences that fork scoring and activation shifts compare the two models on.

A `Sequence` is a prompt and a completion, as token ids; only completion positions are scored.
Sequences are given (prompt + completion texts) or sampled from one model of the pair; prompts and
sequences that do not fit the context are cut, with one warning naming how many.

Example:
    >>> import postlens as pl
    >>> pair = pl.load("organism:base", rl="organism:rl").pair
    >>> seqs = sequences_for(pair, [("Q: 12+34=?\\n", None)], generate=4, max_new_tokens=8)
    >>> ids, mask, scored = pad_batch(pair, seqs)
    >>> ids.shape[0], int(scored.sum()) == sum(len(s.completion_ids) for s in seqs)
    (4, True)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from postlens.pair import ModelPair

logger = logging.getLogger(__name__)


@dataclass
class Sequence:
    """A sequence to score: prompt tokens, then completion tokens (the positions scored)."""

    prompt_ids: list[int]
    completion_ids: list[int]
    source: str = "given"


def context_length(pair: ModelPair) -> int | None:
    """The base model's context length in tokens, when its config states one."""
    return getattr(pair.base.hf_model.config, "max_position_embeddings", None)


def fit_prompts(tokenizer: Any, prompts: list[str], max_tokens: int) -> list[str]:
    """Prompts longer than `max_tokens` tokens keep their last ones; warns with the count."""
    out, cut = [], 0
    for text in prompts:
        ids = tokenizer(text).input_ids
        if len(ids) > max_tokens:
            cut += 1
            text = tokenizer.decode(ids[-max_tokens:], skip_special_tokens=True)
        out.append(text)
    if cut:
        logger.warning(
            "%d prompt(s) longer than the %d tokens the context leaves were truncated (kept "
            "their last tokens)",
            cut,
            max_tokens,
        )
    return out


def sample_sequences(
    pair: ModelPair, prompts: list[str], n: int = 1, source: str = "post", **generate_kwargs: Any
) -> list[Sequence]:
    """Sample `n` completions per prompt from one model of the pair (``post`` or ``base``).

    Prompts that leave no room for ``max_new_tokens`` in the model's context keep their last
    tokens (one warning names how many were cut).
    """
    context = context_length(pair)
    if context:
        room = context - generate_kwargs.get("max_new_tokens", 64)
        prompts = fit_prompts(pair.tokenizer, prompts, max(1, room))
    samples = pair.generate(source, prompts, n=n, **generate_kwargs)  # type: ignore[arg-type]
    return [Sequence(s.prompt_ids, s.completion_ids, source) for s in samples if s.completion_ids]


def given_sequences(pair: ModelPair, pairs: list[tuple[str, str]]) -> list[Sequence]:
    """Sequences from (prompt, completion) texts; the completion is tokenized on its own."""
    tok = pair.tokenizer
    return [
        Sequence(tok(p).input_ids, tok(c, add_special_tokens=False).input_ids, "given")
        for p, c in pairs
    ]


def sequences_for(
    pair: ModelPair,
    records: list[tuple[str, str | None]],
    generate: int = 0,
    source: str = "post",
    **generate_kwargs: Any,
) -> list[Sequence]:
    """Sequences to score: `generate` samples per prompt, or the completions given (if 0).

    Raises:
        InputFileError: `generate` is 0 and no record has a completion.
    """
    if generate > 0:
        return sample_sequences(
            pair, [p for p, _ in records], n=generate, source=source, **generate_kwargs
        )
    given = [(p, c) for p, c in records if c is not None]
    if not given:
        from postlens.errors import InputFileError

        raise InputFileError(
            "no completions to score: add 'completion' fields or sample some (--generate N)"
        )
    return given_sequences(pair, given)


def truncate_to_context(seqs: list[Sequence], context: int) -> list[Sequence]:
    """Cut sequences longer than the model's context, with one warning naming how many."""
    out, cut = [], 0
    for s in seqs:
        if len(s.prompt_ids) + len(s.completion_ids) > context:
            cut += 1
            keep = max(0, context - len(s.prompt_ids))
            s = Sequence(s.prompt_ids[-context:], s.completion_ids[:keep], s.source)
        out.append(s)
    if cut:
        logger.warning(
            "%d sequence(s) longer than the context (%d tokens) were truncated", cut, context
        )
    return [s for s in out if s.completion_ids]


def pad_batch(
    pair: ModelPair, seqs: list[Sequence]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, mask, and the index of every scored position (predicting a completion token)."""
    width = max(len(s.prompt_ids) + len(s.completion_ids) for s in seqs)
    pad = pair.tokenizer.pad_token_id
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    scored = torch.zeros_like(ids, dtype=torch.bool)
    for i, s in enumerate(seqs):
        full = s.prompt_ids + s.completion_ids
        ids[i, : len(full)] = torch.tensor(full)
        mask[i, : len(full)] = 1
        # Position t predicts token t+1: the logits that predict completion tokens.
        scored[i, len(s.prompt_ids) - 1 : len(full) - 1] = True
    return ids, mask, scored
