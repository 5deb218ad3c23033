"""``postlens info BASE POST``: load a pair and say what it is made of."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer
from rich.console import Console
from rich.table import Table

from postlens.cli import options as opt
from postlens.cli.app import app, friendly_errors, setup_logging

if TYPE_CHECKING:
    from postlens.backends.names import BackendName

DEFAULT_BASE = "organism:base"
DEFAULT_POST = "organism:rl"


@app.command("info")
@friendly_errors
def info(
    base: str = typer.Argument(DEFAULT_BASE, help="Base model spec."),
    post: str = typer.Argument(DEFAULT_POST, help="Post-trained model spec."),
    backend: str = opt.BACKEND,
    device: str | None = opt.DEVICE,
    dtype: str | None = opt.DTYPE,
    chat_template: str | None = opt.CHAT_TEMPLATE,
    trust_remote_code: bool = typer.Option(False, help="Run code shipped with a checkpoint."),
    json_out: Path | None = opt.JSON_OUT,
    verbose: bool = opt.VERBOSE,
) -> None:
    """Load BASE and POST side by side and print architecture, sizes, tokenizer differences, hooks.

    Differing special tokens, added tokens and chat templates are listed, not refused (exit 0).
    """
    setup_logging(verbose)
    opt.check_load(dtype, device)
    opt.check_outputs(json_out)
    from postlens.pair import ModelPair
    from postlens.pair_info import describe_pair

    pair = ModelPair.load(
        base,
        post,
        backend=cast("BackendName", backend),  # checked by the load
        device=device,
        dtype=dtype,
        trust_remote_code=trust_remote_code,
        chat_template=chat_template,
    )
    described = describe_pair(pair)
    console = Console()
    table = Table(title=f"postlens pair ({described.backend})")
    table.add_column("")
    table.add_column("base")
    table.add_column("post")
    for label, attr in [("spec", "spec"), ("architecture", "architecture"), ("dtype", "dtype")]:
        table.add_row(label, getattr(described.base, attr), getattr(described.post, attr))
    table.add_row("parameters", f"{described.base.n_params:,}", f"{described.post.n_params:,}")
    if described.base.source or described.post.source:
        table.add_row("read from", described.base.source or "-", described.post.source or "-")
    console.print(table)
    console.print(
        f"layers {described.n_layers} · d_model {described.d_model} · vocab "
        f"{described.vocab_size} · pair memory {described.memory_bytes / 2**20:.1f} MiB"
    )
    if described.differences:
        console.print(f"tokenizers: {described.vocab_size} shared ids; they differ in:")
        for line in described.differences:
            console.print(f"  - {line}", markup=False)
    else:
        console.print(f"tokenizer: {described.tokenizer_check}", markup=False)
    console.print(f"chat template: {described.chat_template}")
    names = described.hook_names
    console.print(f"hook names ({len(names)}): {', '.join(names[:5])}, ..., {names[-1]}")
    opt.write_json(json_out, described.to_dict())
