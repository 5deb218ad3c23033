"""The compute function of each report section (registered in `postlens.reporting`).

Each takes the shared `ReportContext` and returns plain feature results; rendering is in
`postlens.viz.sections`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from postlens.reporting import ReportContext, section


def prompts(ctx: ReportContext) -> list[tuple[str, str | None]]:
    """The report's prompts: the file given, or the organism's held-out problems."""
    if "prompts" not in ctx.cache:
        from postlens.cli.forks import load_prompt_pairs

        ctx.cache["prompts"] = load_prompt_pairs(
            ctx.config.prompts, ctx.config.base, ctx.config.n_prompts
        )
    return ctx.cache["prompts"]


def sequences(ctx: ReportContext, child: str) -> list[Any]:
    """Completions sampled from `child` (or the completions given), shared by forks and activations."""
    key = f"sequences:{child}"
    if key not in ctx.cache:
        from postlens.diffs.forks import sequences_for

        records, cfg = prompts(ctx), ctx.config
        # Completions given in the prompt file are scored as they are; otherwise sampled.
        generate = 0 if any(c is not None for _, c in records) else cfg.n_samples
        ctx.cache[key] = sequences_for(
            ctx.pairs[child], records, generate, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed
        )
    return ctx.cache[key]


@section("weights")
def weights_section(ctx: ReportContext) -> Any:
    from postlens.diffs.weights import compare_children

    return compare_children(ctx.config.base, ctx.config.children, progress=False)


@section("forks")
def forks_section(ctx: ReportContext) -> dict[str, Any]:
    from postlens.diffs.forks import score_forks

    return {
        child: score_forks(pair, sequences(ctx, child), progress=False)
        for child, pair in ctx.pairs.items()
    }


@section("activations")
def activations_section(ctx: ReportContext) -> dict[str, Any]:
    from postlens.diffs.activations import activation_shifts

    return {
        child: activation_shifts(pair, sequences(ctx, child), progress=False)
        for child, pair in ctx.pairs.items()
    }


@section("passk")
def passk_section(ctx: ReportContext) -> Any:
    from postlens.diffs.passk import pass_at_k_curves

    if ctx.config.verifier != "organism":
        raise NotImplementedError(
            "pass@k needs a verifier: only the organism's is built in (--verifier organism)"
        )
    from postlens.organism.task import make_problems, verify
    from postlens.organism.train import HELD_OUT_SEED

    problems = make_problems(ctx.config.n_prompts, HELD_OUT_SEED)
    first = next(iter(ctx.pairs.values()))
    models = {"base": first.base} | {child: pair.post for child, pair in ctx.pairs.items()}
    return pass_at_k_curves(
        models,
        first.tokenizer,
        [p.prompt for p in problems],
        [partial(_verify, verify, p) for p in problems],
        n=ctx.config.passk_samples,
        max_new_tokens=ctx.config.max_new_tokens,
        seed=ctx.config.seed,
    )


def _verify(verify: Any, problem: Any, completion: str) -> bool:
    return verify(completion, problem)
