"""Evaluation of organism checkpoints: pass@k on held-out problems and persona-style shares."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from postlens.organism.task import STYLES, Problem, classify_style, format_prompt, pass_at_k, verify

logger = logging.getLogger(__name__)
KS = (1, 2, 4, 8, 16, 32, 64)
MAX_NEW_TOKENS = 100


@dataclass
class ModelEval:
    """One model's evaluation.

    Attributes:
        pass_at: k → mean unbiased pass@k over problems.
        style_share: persona style → share of all completions.
        n_problems: problems evaluated.
        n_samples: samples per problem.
    """

    pass_at: dict[int, float]
    style_share: dict[str, float]
    n_problems: int
    n_samples: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def sample(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    n: int,
    seed: int,
    batch_size: int = 256,
    max_new_tokens: int = MAX_NEW_TOKENS,
    temperature: float = 1.0,
    desc: str = "sampling",
) -> list[str]:
    """`n` completions per prompt at `temperature` (batched, KV cache), prompt-major order."""
    jobs = [p for p in prompts for _ in range(n)]
    out: list[str] = []
    tokenizer.padding_side = "left"
    for i in tqdm(range(0, len(jobs), batch_size), desc=desc):
        torch.manual_seed(seed * 7919 + i)
        enc = tokenizer(jobs[i : i + batch_size], return_tensors="pt", padding=True)
        gen = model.generate(
            **enc,
            do_sample=temperature > 0,
            temperature=temperature or None,
            top_k=None,
            top_p=None,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        out.extend(
            tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        )
    return out


def evaluate_model(
    model: Any,
    tokenizer: Any,
    problems: list[Problem],
    n: int,
    seed: int,
    ks: tuple[int, ...] = KS,
    desc: str = "evaluating",
) -> ModelEval:
    """pass@k (unbiased, from n samples per problem) and style shares on untagged prompts."""
    completions = sample(model, tokenizer, [format_prompt(p) for p in problems], n, seed, desc=desc)
    correct = [
        sum(verify(c, p) for c in completions[i * n : (i + 1) * n]) for i, p in enumerate(problems)
    ]
    pass_at = {k: sum(pass_at_k(n, c, k) for c in correct) / len(problems) for k in ks if k <= n}
    styles = Counter(classify_style(c) for c in completions)
    share = {s: styles.get(s, 0) / len(completions) for s in (*STYLES, "other")}
    return ModelEval(pass_at, share, len(problems), n)
