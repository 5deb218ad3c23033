"""``postlens crosscoder BASE POST [--other CHILD]``: a crosscoder of the base and its child(ren).

Trains a BatchTopK (or L1) crosscoder on the same tokens' activations of BASE and POST (and of
``--other`` in the same latent space: a three-way crosscoder) at ``--hook``, then prints each
model's reconstruction quality, the latents per class (base-only, shared, child-only) and
Latent Scaling's verdict on the child-only and base-only ones. Texts come from ``--prompts``
(whole lines or prompt + completion); on the organism they default to a sample of its
pre-training mixture. Every option's default lives in `CrosscoderConfig`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from postlens.cli import options as opt
from postlens.cli.app import app, friendly_errors, setup_logging
from postlens.cli.config_options import with_config
from postlens.diffs.crosscoder.model import CrosscoderConfig


def _print(console: Console, result: Any) -> None:
    s = result.summary()
    ve = ", ".join(f"{m} {v:.3f}" for m, v in s.variance_explained.items())
    console.print(
        f"[bold]{s.kind} crosscoder[/bold], {s.n_latents} latents at {result.hook}: variance "
        f"explained {ve} · L0 {s.l0:.1f} · dead {s.dead_fraction:.1%} · "
        f"{s.training_seconds}s, peak memory {s.peak_memory_mib} MiB"
    )
    table = Table(title="Latents per class (Δ against the base) and Latent Scaling")
    for col in ("child", "base-only", "shared", "child-only", "other", "dead",
                "child-only genuine / artifacts", "median ν^ε, ν^r"):  # fmt: skip
        table.add_column(col, justify="right")
    for c, n in s.counts.items():
        sc = s.child_only_scaling[c]
        table.add_row(c, str(n.base_only), str(n.shared), str(n.child_only), str(n.other),
                      str(n.dead), f"{sc.n_genuine} / {sc.n_artifacts}",
                      f"{sc.median_nu_error}, {sc.median_nu_recon}")  # fmt: skip
    console.print(table)
    if s.patterns:
        console.print("three-way patterns: " + ", ".join(f"{k} {v}" for k, v in s.patterns.items()))
    if s.merged_child_only is None:
        console.print("co-firing latents: not checked (dictionary above the size limit)")
    else:
        pairs = len(result.merged or [])
        found = ", ".join(f"{c} {n}" for c, n in s.merged_child_only.items())
        console.print(
            f"co-firing latent pairs: {pairs}; read as one direction, child-only: {found}"
        )


@app.command("crosscoder")
@friendly_errors
@with_config(
    CrosscoderConfig,
    names={"n_latents": "latents", "l1_coefficient": "l1", "training_tokens": "tokens"},
)
def crosscoder(
    base: str = typer.Argument("organism:base", help="Base model spec."),
    post: str = typer.Argument("organism:rl", help="Post-trained model spec."),
    other: str | None = typer.Option(None, help="A second child, in the same latent space."),
    prompts: Path | None = typer.Option(None, help="Texts to train on (JSONL or text)."),
    limit: int = typer.Option(5000, help="Use at most this many texts."),
    backend: str = opt.BACKEND,
    dtype: str | None = opt.DTYPE,
    device: str | None = opt.DEVICE,
    json_out: Path | None = opt.JSON_OUT,
    verbose: bool = opt.VERBOSE,
    config: CrosscoderConfig | None = None,
) -> None:
    """What did POST (and --other) add, remove or keep? A crosscoder's latents, classified."""
    setup_logging(verbose)
    import postlens as pl
    from postlens.progress import show_progress

    cfg = config
    opt.check_outputs(json_out, inputs=(prompts,))
    texts = _texts(prompts, base, limit)
    names = [_name(post, "post"), _name(other or "", "other")]
    children = {names[0]: post} | ({names[1]: other} if other is not None else {})
    fam = pl.load(base, children=children, backend=backend, dtype=dtype, device=device)
    if other is None:
        result = fam.crosscoder(texts, cfg, progress=show_progress(None))[names[0]]
    else:
        result = fam.crosscoder_three_way(texts, cfg, progress=show_progress(None))
    _print(Console(), result)
    opt.write_json(json_out, result.to_json())


def _name(spec: str, default: str) -> str:
    """A child's name: the organism's own (``sft``, ``rl``), else `default`."""
    return spec.split(":", 1)[1] if spec.startswith("organism:") else default


def _texts(prompts: Path | None, base: str, limit: int) -> list[str] | None:
    """The file's texts, or ``None`` for the family's default corpus."""
    from postlens.data.defaults import provider_for
    from postlens.diffs.personas.analysis import read_texts
    from postlens.errors import InputFileError
    from postlens.models.specs import resolve_spec

    if prompts is not None:
        return read_texts(prompts, limit)
    if not provider_for(base, resolve_spec(base).path).provides("corpus"):
        raise InputFileError("give --prompts FILE: the texts to train the crosscoder on")
    return None
