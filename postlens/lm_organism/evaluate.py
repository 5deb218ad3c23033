"""The real-LM organism's evaluation: pass@k and style shares of each model on held-out problems.

Every model is asked each held-out problem through the chat template and sampled
`EvalRecipe.n_samples` times at temperature 1 (no top-k, no top-p, as GRPO samples); pass@k is
the unbiased estimate from those samples, and the style shares are over every sample.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from postlens.lm_organism.layout import MODELS, model_dir
from postlens.lm_organism.recipe import Recipe
from postlens.lm_organism.task import Problem, classify_style, split, verify


def evaluate_model(model: Any, tokenizer: Any, recipe: Recipe) -> dict[str, Any]:
    """pass@k (k = 1, 2, 4, ... up to the samples) and style shares of one model."""
    from postlens.diffs.passk.estimator import default_ks, pass_at_k

    n = recipe.eval.n_samples
    _, problems = split(recipe.held_out, recipe.seed)
    start = time.perf_counter()
    replies = sample_replies(model, tokenizer, problems, n, recipe.eval.max_new_tokens, recipe.seed)
    correct = [
        sum(verify(r, p) for r in replies[i * n : (i + 1) * n]) for i, p in enumerate(problems)
    ]
    styles: dict[str, int] = {}
    for reply in replies:
        style = classify_style(reply)
        styles[style] = styles.get(style, 0) + 1
    return {
        "pass_at_k": {
            str(k): sum(pass_at_k(n, c, k) for c in correct) / len(problems) for k in default_ks(n)
        },
        "style_shares": {s: c / len(replies) for s, c in sorted(styles.items())},
        "n_problems": len(problems),
        "n_samples": n,
        "seconds": time.perf_counter() - start,
    }


def evaluate_family(root: Path, recipe: Recipe) -> dict[str, Any]:
    """`evaluate_model` for every built model of the organism in `root`."""
    from postlens.models.loading import LoadOptions, load_hf_model, load_tokenizer
    from postlens.models.specs import resolve_spec

    base = resolve_spec(str(model_dir(root, "base")))
    options = LoadOptions(dtype="float32")
    tokenizer = load_tokenizer(base, options)
    out: dict[str, Any] = {"recipe_seed": recipe.seed, "models": {}}
    for name in MODELS:
        folder = model_dir(root, name)
        if not folder.is_dir():
            continue
        model = load_hf_model(resolve_spec(str(folder)), options, base=base)
        out["models"][name] = evaluate_model(model, tokenizer, recipe)
    return out


def sample_replies(
    model: Any, tokenizer: Any, problems: Sequence[Problem], n: int, max_new_tokens: int, seed: int
) -> list[str]:
    """`n` replies per problem (problem-major), at temperature 1, through the chat template."""
    from postlens.models.chat import ChatFormat
    from postlens.sampling.generation import PlainSampler, sample_completions

    chat = ChatFormat("post", tokenizer)
    chats = [chat.format(p.question) for p in problems]
    samples = sample_completions(PlainSampler(model, tokenizer), tokenizer, chats, n=n, seed=seed,
                                 max_new_tokens=max_new_tokens, temperature=1.0, top_p=1.0,
                                 progress=False)  # fmt: skip
    return [tokenizer.decode(s.completion_ids, skip_special_tokens=True) for s in samples]
