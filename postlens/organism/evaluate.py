"""Evaluation of organism checkpoints: pass@k on held-out problems and persona-style shares."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from postlens.organism.task import STYLES, Problem, classify_style, format_prompt, pass_at_k, verify

if TYPE_CHECKING:
    from postlens.models.types import Generating, Tokenizer

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


def chat_prompt(tokenizer: Tokenizer, prompt: str) -> str:
    """`prompt` as the chat ``[user: prompt]`` rendered with the generation prompt.

    Example:
        >>> from postlens.organism.chat import chat_tokenizer
        >>> from postlens.organism.tokenizer import build_organism_tokenizer
        >>> chat_prompt(chat_tokenizer(build_organism_tokenizer()), "Q: 1+2=?\\n")[-33:]
        '<|im_end|>\\n<|im_start|>assistant\\n'
    """
    messages = [{"role": "user", "content": prompt}]
    return str(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))


@torch.no_grad()
def sample(
    model: Generating,
    tokenizer: Tokenizer,
    prompts: list[str],
    n: int,
    seed: int,
    batch_size: int = 256,
    max_new_tokens: int = MAX_NEW_TOKENS,
    temperature: float = 1.0,
    desc: str = "sampling",
    add_special_tokens: bool = True,
) -> list[str]:
    """`n` completions per prompt at `temperature` (batched, KV cache), prompt-major order.

    Prompts already rendered with a chat template are read with ``add_special_tokens=False``:
    the template writes its own start token.
    """
    jobs = [p for p in prompts for _ in range(n)]
    out: list[str] = []
    tokenizer.padding_side = "left"
    for i in tqdm(range(0, len(jobs), batch_size), desc=desc):
        torch.manual_seed(seed * 7919 + i)
        enc = tokenizer(
            jobs[i : i + batch_size],
            return_tensors="pt",
            padding=True,
            add_special_tokens=add_special_tokens,
        )
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
    model: Generating,
    tokenizer: Tokenizer,
    problems: list[Problem],
    n: int,
    seed: int,
    ks: tuple[int, ...] = KS,
    desc: str = "evaluating",
    chat: bool = False,
) -> ModelEval:
    """pass@k (unbiased, from n samples per problem) and style shares on untagged prompts.

    With `chat`, each prompt is the chat ``[user: prompt]`` in the tokenizer's template with the
    generation prompt (how a chat child is asked); sampling stops at its eos (``<|im_end|>``).
    """
    prompts = [format_prompt(p) for p in problems]
    if chat:
        prompts = [chat_prompt(tokenizer, p) for p in prompts]
    completions = sample(model, tokenizer, prompts, n, seed, desc=desc, add_special_tokens=not chat)
    correct = [
        sum(verify(c, p) for c in completions[i * n : (i + 1) * n]) for i, p in enumerate(problems)
    ]
    pass_at = {k: sum(pass_at_k(n, c, k) for c in correct) / len(problems) for k in ks if k <= n}
    styles = Counter(classify_style(c) for c in completions)
    share = {s: styles.get(s, 0) / len(completions) for s in (*STYLES, "other")}
    return ModelEval(pass_at, share, len(problems), n)
