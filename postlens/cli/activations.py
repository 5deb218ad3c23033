"""``postlens activations BASE POST``: where in depth the two models part."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from postlens.cli.app import app, friendly_errors, setup_logging
from postlens.cli.forks import load_prompt_pairs


@app.command("activations")
@friendly_errors
def activations(
    base: str = typer.Argument("organism:base", help="Base model spec."),
    post: str = typer.Argument("organism:rl", help="Post-trained model spec."),
    prompts: Path | None = typer.Option(
        None, help="JSONL ('prompt', optional 'completion') or text."
    ),
    generate: int = typer.Option(
        1, help="Completions sampled per prompt from the post model (0: use the given ones)."
    ),
    max_new_tokens: int = typer.Option(96),
    seed: int = typer.Option(0),
    limit: int = typer.Option(32, help="Use at most this many prompts."),
    patching: bool = typer.Option(True, help="Per-layer patching (one extra base pass per layer)."),
    backend: str = typer.Option("nnsight", help="transformer_lens or nnsight."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the per-layer figures here."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Per-layer cosine, relative norm, logit-lens KL and patching recovery on the same tokens."""
    setup_logging(verbose)
    from postlens.diffs.activations import ActivationConfig, activation_shifts
    from postlens.diffs.forks import sequences_for
    from postlens.io import write_json_atomic
    from postlens.pair import ModelPair

    records = load_prompt_pairs(prompts, base, limit)
    pair = ModelPair.load(base, post, backend=backend)  # type: ignore[arg-type]
    seqs = sequences_for(pair, records, generate, max_new_tokens=max_new_tokens, seed=seed)
    result = activation_shifts(pair, seqs, ActivationConfig(patching=patching))
    table = Table(
        title=f"{base} → {post} (output KL {result.output_kl:.4g}, {result.n_positions} positions)"
    )
    for col in ("layer", "cosine", "rel. norm", "logit-lens KL", "patch recovered"):
        table.add_column(col, justify="right")
    for x in result.layers:
        rec = "–" if x.patch_recovered is None else f"{x.patch_recovered:.3f}"
        table.add_row(
            str(x.layer),
            f"{x.cosine_mean:.4f}",
            f"{x.rel_norm_mean:.4f}",
            f"{x.logit_lens_kl:.4g}",
            rec,
        )
    Console().print(table)
    if json_out is not None:
        write_json_atomic(json_out, result.to_json())
