"""``postlens activations BASE POST``: where in depth the two models part."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from postlens.cli import options as opt
from postlens.cli.app import app, friendly_errors, setup_logging
from postlens.cli.config_options import with_config
from postlens.diffs.activations.compute import ActivationConfig


@app.command("activations")
@friendly_errors
@with_config(ActivationConfig, exclude=("sample.n",), names={"source": "from"})
def activations(
    base: str = typer.Argument("organism:base", help="Base model spec."),
    post: str = typer.Argument("organism:rl", help="Post-trained model spec."),
    prompts: Path | None = opt.PROMPTS,
    prompt_field: str = opt.PROMPT_FIELD,
    completion_field: str = opt.COMPLETION_FIELD,
    generate: int | None = opt.generate_option("default: the file's completions, else 2"),
    backend: str = opt.BACKEND,
    dtype: str | None = opt.DTYPE,
    device: str | None = opt.DEVICE,
    chat_template: str | None = opt.CHAT_TEMPLATE,
    json_out: Path | None = opt.JSON_OUT,
    verbose: bool = opt.VERBOSE,
    config: ActivationConfig | None = None,
) -> None:
    """Per-layer cosine, relative norm, logit-lens KL and patching recovery on the same tokens."""
    setup_logging(verbose)
    import postlens as pl

    assert config is not None  # built by with_config from the options
    config = dataclasses.replace(config, sample=opt.with_generate(config.sample, generate))
    opt.check_outputs(json_out, inputs=(prompts,))
    opt.check_load(dtype, device)
    source_file = opt.prompt_source(prompts, prompt_field, completion_field)
    data = opt.sequences_input(source_file, generate, config.sample.limit)
    fam = pl.load(
        base, post, backend=backend, dtype=dtype, device=device, chat_template=chat_template
    )
    result = fam.activations(data, config)["post"]
    table = Table(
        title=f"{base} → {post} (output KL {result.output_kl:.4g}, {result.n_positions} "
        f"positions; logit lens at {result.lens_positions}; {result.patching} patching)"
    )
    for col in ("layer", "cosine", "rel. norm", "logit-lens KL", "patch recovered"):
        table.add_column(col, justify="right")
    for x in result.layers:
        rec = "–" if x.patch_recovered is None else f"{x.patch_recovered:.3f}"
        lens = "–" if x.logit_lens_kl is None else f"{x.logit_lens_kl:.4g}"
        table.add_row(str(x.layer), f"{x.cosine_mean:.4f}", f"{x.rel_norm_mean:.4f}",
                      lens, rec)  # fmt: skip
    Console().print(table)
    opt.write_json(json_out, result.to_json())
