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


def organism_persona_docs(n: int, seed: int) -> dict[str, list[str]]:
    """Persona-tagged organism documents (tag, question, answer in that persona's style)."""
    import random

    from postlens.organism.task import STYLES, format_prompt, make_problems, solution
    from postlens.organism.train import HELD_OUT_SEED

    rng = random.Random(seed)
    problems = make_problems(n, HELD_OUT_SEED + 1)
    return {s: [format_prompt(p, s) + solution(p, s, rng=rng) for p in problems] for s in STYLES}


@section("personas")
def personas_section(ctx: ReportContext) -> dict[str, Any]:
    """Persona directions of the base, each child's shift along them, and SAE latent diffing."""
    from postlens.organism.corpus import CorpusConfig, build_corpus
    from postlens.probes.personas import persona_directions, shift_direction
    from postlens.specs import ORGANISM_ROOT

    _organism_only(ctx, "personas")
    first = next(iter(ctx.pairs.values()))
    base, tok = first.base.hf_model, first.tokenizer
    docs = organism_persona_docs(60, ctx.config.seed)
    directions = {
        s: persona_directions(
            base, tok, docs[s], [d for o, ds in docs.items() if o != s for d in ds], name=s
        )
        for s in docs
    }
    untagged = [
        d
        for d in build_corpus(CorpusConfig(n_docs=300, tagged_share=0.0), seed=321)
        if d.startswith("Q:")
    ][:120]
    shifts = {}
    for child, pair in ctx.pairs.items():
        row = {}
        for s, res in directions.items():
            layer = res.best.provenance.layer
            unit, norm = shift_direction(base, pair.post.hf_model, tok, untagged, layer)
            row[s] = {"layer": layer, "cosine": float(unit @ res.best.vector), "shift_norm": norm,
                      "projection_base": float(res.best.project(base, tok, untagged).mean()),
                      "projection_child": float(res.best.project(pair.post.hf_model, tok, untagged).mean())}  # fmt: skip
        shifts[child] = row
    out: dict[str, Any] = {"directions": directions, "shifts": shifts, "features": None}
    sae_dir = ORGANISM_ROOT / "sae"
    if (sae_dir / "cfg.json").is_file():
        from postlens.diffs.features import diff_features, encode_prompts, top_contexts
        from postlens.diffs.sae import load_sae, sae_hook
        from postlens.hooks import parse_hook

        sae = load_sae(sae_dir)
        layer = parse_hook(sae_hook(sae), first.n_layers).layer
        diff, feats = diff_features(sae, ctx.pairs, untagged)
        tagged = {s: encode_prompts(sae, first.base, ds[:40]) for s, ds in docs.items()}
        plain = encode_prompts(sae, first.base, untagged[:60])
        diff.flag_personas(
            sae, {s: r.directions[layer] for s, r in directions.items()}, tagged, plain
        )
        for latent in sorted(
            diff.flags, key=lambda i: -max(abs(diff.change(c)[i]) for c in diff.children)
        )[:10]:
            diff.contexts[latent] = top_contexts(feats["base"], untagged, tok, latent, k=3)
        out["features"] = diff
    return out
