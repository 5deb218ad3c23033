"""The token sequences that fork scoring and activation shifts compare the two models on.

A `Sequence` is a prompt and a completion, as token ids; only completion positions are scored.
Sequences are given (prompt + completion texts) or sampled from one model of the pair; prompts and
sequences that do not fit the context are cut, with one warning naming how many.

Prompts become ids through the pair's `postlens.models.chat.ChatFormat` (a chat template applied, or
plain text); a given completion is its own tokens, appended. Both models read the same ids.
Only ids both models share are scored (`postlens.models.compat`): `keep_shared` cuts a sequence before
its first id that is not shared and counts the positions that excluded.

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
from typing import TYPE_CHECKING, Any

import torch

from postlens.data.prompts import PromptRecord
from postlens.errors import ConfigError
from postlens.pair import ModelPair

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer

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


def fit_prompts(tokenizer: Tokenizer, prompts: list[str], max_tokens: int) -> list[str]:
    """Prompts longer than `max_tokens` tokens keep their last ones; warns with the count."""
    from postlens.models.chat import TemplatedPrompt

    out, cut = [], 0
    for text in prompts:
        templated = isinstance(text, TemplatedPrompt)
        ids = text.ids if isinstance(text, TemplatedPrompt) else tokenizer(text).input_ids
        if len(ids) > max_tokens:
            cut += 1
            kept = ids[-max_tokens:]
            text = str(tokenizer.decode(kept, skip_special_tokens=not templated))
            text = TemplatedPrompt(text, kept) if templated else text
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
    prompts = [pair.chat.format(p, f"prompt {i + 1}") for i, p in enumerate(prompts)]
    if context:
        new = generate_kwargs.get("max_new_tokens", 64)
        if new >= context:  # no prompt token would be left: refuse rather than cut every prompt
            raise ConfigError(
                f"max_new_tokens={new} leaves no room for the prompt in the model's {context}-"
                f"token context; give --max-new-tokens below {context}"
            )
        prompts = fit_prompts(pair.chat.tokenizer, prompts, context - new)
    samples = pair.generate(source, prompts, n=n, **generate_kwargs)  # type: ignore[arg-type]
    return [Sequence(s.prompt_ids, s.completion_ids, source) for s in samples if s.completion_ids]


def given_sequences(pair: ModelPair, pairs: list[tuple[str, str]] | list[Any]) -> list[Sequence]:
    """Sequences from (prompt, completion) texts or records: the prompt formatted by the pair's
    chat format, then the completion's own tokens (no end-of-turn token added)."""
    out = []
    for i, item in enumerate(pairs):
        prompt, completion, line = _fields(item, i + 1)
        ids = pair.chat.prompt_ids(prompt, f"prompt line {line}")
        out.append(Sequence(ids, pair.chat.completion_ids(completion), "given"))
    return out


def _fields(item: Any, position: int) -> tuple[str, Any, int]:
    """(prompt, completion, line) of a (prompt, completion) pair or a `PromptRecord`."""
    if isinstance(item, tuple):
        return item[0], item[1], position
    return item.prompt, item.completion, item.line or position


def keep_shared(pair: ModelPair, seqs: list[Sequence]) -> tuple[list[Sequence], int]:
    """Sequences cut before their first id the two models do not share, and the positions cut.

    A cut position is one whose target token (or an earlier token of its sequence) is not
    shared, so one model could not predict or read it (the shared-id rule of `postlens.models.compat`).

    Raises:
        InputFileError: a prompt holds an id the other model does not have.
    """
    tokens = pair.tokens
    if tokens is None or (not tokens.masked and tokens.vocab_size[0] == tokens.vocab_size[1]):
        return seqs, 0
    out, cut = [], 0
    for s in seqs:
        bad = [t for t in s.prompt_ids if not tokens.is_shared(t)]
        if bad:
            from postlens.errors import InputFileError

            text = pair.chat.tokenizer.convert_ids_to_tokens(bad[0])
            raise InputFileError(
                f"the prompt holds token {text!r} (id {bad[0]}) that only one of "
                f"{pair.base_spec.spec} and {pair.post_spec.spec} has; the other cannot read it "
                "(use another chat template, e.g. --chat-template none)"
            )
        keep = next((i for i, t in enumerate(s.completion_ids) if not tokens.is_shared(t)), None)
        if keep is not None:
            cut += len(s.completion_ids) - keep
            s = Sequence(s.prompt_ids, s.completion_ids[:keep], s.source)
        out.append(s)
    return out, cut


def shared_logits(pair: ModelPair, logits: list[torch.Tensor]) -> list[torch.Tensor]:
    """Logits over the ids both models share (`restrict_logits`; no copy when all are)."""
    from postlens.diffs.divergence import restrict_logits

    tokens = pair.tokens
    masked = torch.tensor(tokens.masked, dtype=torch.long) if tokens.masked else None
    return [restrict_logits(z, tokens.width, masked) for z in logits]


def sequences_for(
    pair: ModelPair,
    records: list[tuple[str, str | None]] | list[Any],
    generate: int = 0,
    source: str = "post",
    **generate_kwargs: Any,
) -> list[Sequence]:
    """Sequences to score: `generate` samples per prompt, or the completions given (if 0).

    Args:
        records: (prompt, completion) pairs or `PromptRecord`s (whose lines errors name).

    Raises:
        InputFileError: `generate` is 0 and no record has a completion.
    """
    items = [_fields(r, i + 1) for i, r in enumerate(records)]
    if generate > 0:
        prompts = [pair.chat.format(p, f"prompt line {line}") for p, _, line in items]
        return sample_sequences(pair, prompts, n=generate, source=source, **generate_kwargs)
    given = [(p, c, line) for p, c, line in items if c is not None]
    if not given:
        from postlens.errors import InputFileError

        raise InputFileError(
            "no completions to score: add 'completion' fields or sample some (--generate N)"
        )
    return given_sequences(pair, [PromptRecord(p, c, line=line) for p, c, line in given])


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
