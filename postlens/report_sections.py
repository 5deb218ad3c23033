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


def _organism_only(ctx: ReportContext, what: str) -> None:
    if ctx.config.verifier != "organism":
        raise NotImplementedError(
            f"the {what} section needs the organism's task (--verifier organism, or --demo)"
        )


@section("confidence")
def confidence_section(ctx: ReportContext) -> dict[str, Any]:
    """Behavioural confidence trajectories per model and style, and per-layer probe quality."""
    from postlens.generation import sample_completions
    from postlens.organism.task import ANSWER_SUFFIX, classify_style, make_problems, verify
    from postlens.organism.train import HELD_OUT_SEED
    from postlens.probes.confidence import fit_layer_probes
    from postlens.probes.trajectory import Trace, TrajectoryConfig, behavioural_trajectories

    _organism_only(ctx, "confidence")
    first = next(iter(ctx.pairs.values()))
    tok = first.tokenizer
    problems = make_problems(min(ctx.config.n_prompts, 24), HELD_OUT_SEED + 7)
    models = {"base": first.base} | {child: pair.post for child, pair in ctx.pairs.items()}
    out = {}
    for name, backend in models.items():
        done = sample_completions(
            backend,
            tok,
            [p.prompt for p in problems],
            max_new_tokens=ctx.config.max_new_tokens,
            seed=ctx.config.seed,
            progress=False,
        )
        traces = [
            Trace(
                p.prompt,
                s.completion.rsplit("answer", 1)[0].rstrip("\n"),
                partial(_verify, verify, p),
                classify_style(s.completion),
            )
            for p, s in zip(problems, done, strict=True)
        ]
        traj = behavioural_trajectories(
            backend,
            tok,
            traces,
            TrajectoryConfig(
                n_samples=4, max_new_tokens=8, suffix=ANSWER_SUFFIX, seed=ctx.config.seed
            ),
        )
        probes = fit_layer_probes(backend.hf_model, tok, traces, traj, name=name)
        predicted = probes.best_probe.cut_predictions(
            backend.hf_model, tok, traces, traj.config.n_cuts
        )
        out[name] = {
            "trajectories": traj,
            "probes": probes,
            "probe_trajectory": predicted.mean(0).tolist(),
        }
    return out


@section("personas")
def personas_section(ctx: ReportContext) -> Any:
    """Persona directions of the base, each child's move along them, and SAE latent diffing."""
    from postlens.diffs.sae import load_sae
    from postlens.organism.persona_sets import organism_persona_inputs
    from postlens.probes.persona_analysis import analyse_personas
    from postlens.specs import ORGANISM_ROOT

    _organism_only(ctx, "personas")
    inputs = organism_persona_inputs(n_per_persona=60, n_prompts=120, seed=ctx.config.seed)
    sae_dir = ORGANISM_ROOT / "sae"
    sae = load_sae(sae_dir) if (sae_dir / "cfg.json").is_file() else None
    return analyse_personas(
        ctx.pairs, inputs["sets"], inputs["prompts"], inputs["corpus"], sae,
        "organism:sae" if sae is not None else None, seed=ctx.config.seed,
    )  # fmt: skip
