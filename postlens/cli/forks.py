"""``postlens forks BASE POST``: fork tokens on prompts, given or sampled completions."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from postlens.cli.app import app, friendly_errors, setup_logging


def default_prompts(base: str, n: int) -> list[tuple[str, str | None]]:
    """The organism's held-out problems when the pair is the organism; otherwise none."""
    from postlens.errors import InputFileError

    if not base.startswith("organism:"):
        raise InputFileError(
            "give --prompts FILE (JSONL with a 'prompt' field, or one prompt per line)"
        )
    from postlens.organism.task import make_problems
    from postlens.organism.train import HELD_OUT_SEED

    return [(p.prompt, None) for p in make_problems(n, HELD_OUT_SEED)]


def load_prompt_pairs(prompts: Path | None, base: str, limit: int) -> list[tuple[str, str | None]]:
    """(prompt, completion-or-None) pairs from a file, or the organism's defaults."""
    if prompts is None:
        return default_prompts(base, limit)
    from postlens.prompts import read_prompts

    return [(r.prompt, r.completion) for r in read_prompts(prompts)[:limit]]


@app.command("forks")
@friendly_errors
def forks(
    base: str = typer.Argument("organism:base", help="Base model spec."),
    post: str = typer.Argument("organism:rl", help="Post-trained model spec."),
    prompts: Path | None = typer.Option(
        None, help="JSONL ('prompt', optional 'completion') or text, one per line."
    ),
    generate: int = typer.Option(
        0, help="Sample N completions per prompt (0: score the given completions)."
    ),
    source: str = typer.Option("post", "--from", help="Which model samples: post or base."),
    temperature: float = typer.Option(1.0),
    top_p: float = typer.Option(1.0),
    max_new_tokens: int = typer.Option(96),
    seed: int = typer.Option(0),
    limit: int = typer.Option(64, help="Use at most this many prompts."),
    js_threshold: float = typer.Option(
        0.1, help="JS (nats) above which agreeing positions still fork."
    ),
    backend: str = typer.Option("nnsight", help="transformer_lens or nnsight."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the summary and forks here."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Where do BASE and POST disagree, and does the base's own entropy find those places?"""
    setup_logging(verbose)
    from postlens.diffs.forks import ForkConfig, score_forks, sequences_for
    from postlens.errors import InputFileError, PostlensError
    from postlens.io import write_json_atomic
    from postlens.pair import ModelPair

    if source not in ("post", "base"):
        raise InputFileError(f"--from must be 'post' or 'base', got {source!r}")
    records = load_prompt_pairs(prompts, base, limit)
    try:  # option values out of range: one line, not a traceback
        config = ForkConfig(js_threshold=js_threshold)
        pair = ModelPair.load(base, post, backend=backend)  # type: ignore[arg-type]
        seqs = sequences_for(
            pair, records, generate, source, temperature=temperature, top_p=top_p,
            max_new_tokens=max_new_tokens, seed=seed,
        )  # fmt: skip
    except ValueError as err:
        if isinstance(err, PostlensError):
            raise
        raise PostlensError(str(err)) from None
    result = score_forks(pair, seqs, config)
    s = result.summary
    Console().print(
        f"[bold]{base} → {post}[/bold]: {s['n_sequences']} sequences, {s['n_positions']} positions · "
        f"agreement {s['agreement']:.4f} · top-5 coverage {s['topk_coverage']['5']:.4f} · "
        f"{s['n_forks']} forks · base entropy at forks {s['mean_entropy_forks'] or 0:.3f} vs "
        f"{s['mean_entropy_all']:.3f} overall · forks in top-20% entropy "
        f"{s['share_forks_in_top20_entropy'] or 0:.2%}"
    )
    if json_out is not None:
        write_json_atomic(json_out, result.to_json())
