"""``postlens forks BASE POST``: fork tokens on prompts, given or sampled completions.

Every `ForkConfig` field (its `SampleConfig` flattened in) is an option, with the field's
default and help.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from rich.console import Console

from postlens.cli import options as opt
from postlens.cli.app import app, friendly_errors, setup_logging
from postlens.cli.config_options import with_config
from postlens.diffs.forks.result import ForkConfig


@app.command("forks")
@friendly_errors
@with_config(ForkConfig, exclude=("sample.n",), names={"source": "from"})
def forks(
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
    config: ForkConfig | None = None,
) -> None:
    """Where do BASE and POST disagree, and does the base's own entropy find those places?"""
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
    result = fam.forks(data, config)["post"]
    s = result.summary()
    entropy_forks = "–" if s.mean_entropy_forks is None else f"{s.mean_entropy_forks:.3f}"
    top20 = (
        "–" if s.share_forks_in_top20_entropy is None else f"{s.share_forks_in_top20_entropy:.2%}"
    )
    Console().print(
        f"[bold]{base} → {post}[/bold]: {s.n_sequences} sequences, {s.n_positions} positions · "
        f"agreement {s.agreement:.4f} · top-5 coverage {s.coverage_text} · "
        f"{s.n_forks} forks · base entropy at forks {entropy_forks} vs "
        f"{s.mean_entropy_all:.3f} overall · forks in top-20% entropy {top20}"
        + (f" · {s.n_excluded} positions excluded (ids only one model has)" if s.n_excluded else "")
    )
    opt.write_json(json_out, result.to_json())
