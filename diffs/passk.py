"""The reasoning boundary: unbiased pass@k curves of several models (BRIEF.md §6).

For each problem, n completions are sampled from each model and checked by a verifier; pass@k is
estimated without bias as 1 − C(n−c, k)/C(n, k) from the c correct ones, then averaged over
problems. If RL only narrows the boundary, the base catches up with, or passes, the RL model at
large k.

Example:
    >>> curves = pass_at_k_curves({"base": pair.base, "rl": pair.post}, pair.tokenizer,
    ...                           prompts, verifiers, n=64)  # doctest: +SKIP
    >>> curves.to_frame()  # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from postlens.backends.base import Backend
from postlens.generation import sample_completions

Verifier = Callable[[str], bool]
#: Ways to check a completion against a reference answer (see `answer_verifier`).
VERIFIER_MODES = ("last-number", "answer-line", "contains", "exact")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
_ANSWER_LINE_RE = re.compile(r"answer\s*[:=]?\s*(-?\d+(?:\.\d+)?)\s*$", re.IGNORECASE)


def answer_verifier(answer: Any, mode: str = "last-number") -> Verifier:
    """A verifier comparing a completion with a reference `answer`.

    Modes (ours; pick the one your prompt format implies):
        ``last-number``: the last number in the completion equals the answer (numerically);
        ``answer-line``: the completion ends with ``answer <number>`` and the number matches
        (the organism's format);
        ``contains``: the answer's text occurs in the completion;
        ``exact``: the stripped completion is the answer's text.

    Example:
        >>> answer_verifier(42)("so 40 + 2 = 42")
        True
        >>> answer_verifier(42, "answer-line")("42, answer 41")
        False
    """
    if mode not in VERIFIER_MODES:
        raise ValueError(f"unknown verifier {mode!r}; choose one of {', '.join(VERIFIER_MODES)}")
    text = str(answer).strip()
    if mode == "contains":
        return lambda completion: text in completion
    if mode == "exact":
        return lambda completion: completion.strip() == text
    target = float(text)  # ValueError for a non-numeric answer, named by the caller
    if mode == "answer-line":
        return lambda c: bool(m := _ANSWER_LINE_RE.search(c.strip())) and float(m[1]) == target
    return lambda c: bool(nums := _NUMBER_RE.findall(c)) and float(nums[-1]) == target


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 − C(n−c, k) / C(n, k).

    Computed as a product so it stays exact for large n.

    Example:
        >>> round(pass_at_k(10, 3, 1), 3)
        0.3
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def default_ks(n: int) -> list[int]:
    """1, 2, 4, ... up to n."""
    return [2**i for i in range(int(math.log2(n)) + 1)]


@dataclass
class PassAtKResult:
    """pass@k per model.

    Attributes:
        curves: model name → {k: pass@k}.
        correct: model name → number correct out of n, per problem.
        n: samples per problem.
    """

    curves: dict[str, dict[int, float]]
    correct: dict[str, list[int]]
    n: int
    settings: dict[str, Any] = field(default_factory=dict)

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(
            [
                {"model": m, "k": k, "pass_at_k": v}
                for m, c in self.curves.items()
                for k, v in c.items()
            ]
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "curves": {m: {str(k): v for k, v in c.items()} for m, c in self.curves.items()},
            "correct": self.correct,
            "settings": self.settings,
        }

    def _repr_html_(self) -> str:
        from postlens.viz.html import table

        frame = self.to_frame().pivot(index="k", columns="model", values="pass_at_k").reset_index()
        return table(frame.to_dict("records"))


def pass_at_k_curves(
    models: Mapping[str, Backend],
    tokenizer: Any,
    prompts: Sequence[str],
    verifiers: Sequence[Verifier],
    n: int = 16,
    ks: Sequence[int] | None = None,
    max_new_tokens: int = 96,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 256,
) -> PassAtKResult:
    """Sample n completions per prompt from each model and estimate pass@k.

    Args:
        models: name → backend (e.g. ``{"base": pair.base, "rl": pair.post}``).
        tokenizer: the shared tokenizer.
        prompts: one prompt per problem.
        verifiers: one callable per problem, True for a right completion.
        n: samples per problem and model.
        ks: the k values (default 1, 2, 4, ..., n).
    """
    if len(prompts) != len(verifiers) or not prompts:
        raise ValueError("give one verifier per prompt, and at least one prompt")
    ks = list(ks or default_ks(n))
    if max(ks) > n:
        raise ValueError(f"k={max(ks)} needs at least that many samples (n={n})")
    curves, correct = {}, {}
    for name, backend in models.items():
        samples = sample_completions(
            backend,
            tokenizer,
            prompts,
            n=n,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            seed=seed,
            batch_size=batch_size,
            label=name,
        )
        counts = [
            sum(verifiers[i](s.completion) for s in samples[i * n : (i + 1) * n])
            for i in range(len(prompts))
        ]
        correct[name] = counts
        curves[name] = {k: sum(pass_at_k(n, c, k) for c in counts) / len(counts) for k in ks}
    settings = {
        "temperature": temperature,
        "max_new_tokens": max_new_tokens,
        "seed": seed,
        "n_problems": len(prompts),
    }
    return PassAtKResult(curves, correct, n, settings)
