"""Batched, seeded sampling of completions from one backend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from postlens.backends.base import Backend
from postlens.batch import Sample


def sample_completions(
    backend: Backend,
    tokenizer: Any,
    prompts: Sequence[str],
    n: int = 1,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
    label: str = "",
    progress: bool = True,
) -> list[Sample]:
    """Sample `n` completions for every prompt, `batch_size` sequences at a time.

    Each batch reseeds torch from ``seed`` and its index, so results do not depend on what ran
    before. ``temperature=0`` means greedy decoding.

    Example:
        >>> out = sample_completions(pair.post, pair.tokenizer, ["1 + 2"], n=4)  # doctest: +SKIP
    """
    if n < 1 or batch_size < 1 or max_new_tokens < 1:
        raise ValueError("n, batch_size and max_new_tokens must be positive")
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError("temperature must be >= 0 and top_p in (0, 1]")
    jobs = [p for p in prompts for _ in range(n)]
    samples: list[Sample] = []
    chunks = range(0, len(jobs), batch_size)
    for index, start in enumerate(
        tqdm(chunks, desc=f"sampling {label}".strip(), disable=not progress)
    ):
        torch.manual_seed(seed * 1_000_003 + index)
        samples.extend(
            _sample_batch(
                backend,
                tokenizer,
                jobs[start : start + batch_size],
                max_new_tokens,
                temperature,
                top_p,
                label,
            )
        )
    return samples


def _sample_batch(
    backend: Backend,
    tokenizer: Any,
    prompts: list[str],
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    label: str,
) -> list[Sample]:
    old_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        enc = tokenizer(prompts, return_tensors="pt", padding=True)
    finally:
        tokenizer.padding_side = old_side
    greedy = temperature == 0
    out = backend.generate(
        enc["input_ids"],
        enc["attention_mask"],
        max_new_tokens=max_new_tokens,
        do_sample=not greedy,
        temperature=None if greedy else temperature,
        top_p=None if greedy else top_p,
        top_k=None,
    )
    width = enc["input_ids"].shape[1]
    samples = []
    for row, prompt in enumerate(prompts):
        prompt_ids = enc["input_ids"][row][enc["attention_mask"][row].bool()].tolist()
        completion = _until_eos(out[row, width:].tolist(), tokenizer.eos_token_id)
        text = tokenizer.decode(completion, skip_special_tokens=True)
        samples.append(Sample(prompt, text, prompt_ids, completion, label))
    return samples


def _until_eos(ids: list[int], eos: int | None) -> list[int]:
    if eos is not None and eos in ids:
        return ids[: ids.index(eos) + 1]
    return ids
