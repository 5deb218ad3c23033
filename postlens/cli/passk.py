"""``postlens passk MODEL...``: unbiased pass@k curves of several models on verifiable prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from postlens.cli import options as opt
from postlens.cli.app import app, friendly_errors, setup_logging
from postlens.cli.config_options import with_config
from postlens.diffs.passk.bootstrap import crossing_text
from postlens.diffs.passk.compute import PassKConfig


def _formatted(texts: list[str], backends: list, choice: str | None) -> list[str]:
    """The problems formatted by a chat template: ``base`` is the first model's, ``post`` the
    first later model's that has one (the default when one does)."""
    from postlens.models.chat import choose_chat
    from postlens.models.compat import has_template

    toks = [b.tokenizer for b in backends]
    post = next((t for t in toks[1:] if has_template(t)), toks[-1])
    chat = choose_chat(choice, toks[0], post)
    return [chat.format(t, f"problem {i + 1}") for i, t in enumerate(texts)]


@app.command("passk")
@friendly_errors
@with_config(PassKConfig, exclude=("sample.source",), names={"ks": "k"})
def passk(
    models: list[str] = typer.Argument(..., help="Model specs, e.g. organism:base organism:rl."),
    prompts: Path | None = typer.Option(
        None,
        help="JSONL with 'prompt' and 'answer', or a local dataset (default: the first "
        "model's own problems).",
    ),
    prompt_field: str = opt.PROMPT_FIELD,
    backend: str = opt.BACKEND,
    dtype: str | None = opt.DTYPE,
    device: str | None = opt.DEVICE,
    chat_template: str | None = opt.CHAT_TEMPLATE,
    json_out: Path | None = opt.JSON_OUT,
    verbose: bool = opt.VERBOSE,
    config: PassKConfig | None = None,
) -> None:
    """Does post-training raise pass@1 but narrow the boundary (the base wins at large k)?"""
    setup_logging(verbose)
    from postlens.data.defaults import DEFAULT_PROBLEMS, provider_for
    from postlens.data.inputs import verifiable_problems
    from postlens.diffs.passk.compute import pass_at_k_curves
    from postlens.errors import ConfigError, InputFileError
    from postlens.family import load_models
    from postlens.models.specs import resolve_spec

    assert config is not None  # built by with_config from the options
    limit, verifier = config.sample.limit, config.verifier
    defaults = provider_for(models[0], resolve_spec(models[0]).path)
    if prompts is None and verifier != PassKConfig().verifier:
        raise ConfigError(
            "--verifier applies to a prompt file's answers; the default problems use their "
            "own verifier (give --prompts FILE to use another)"
        )
    opt.check_outputs(json_out, inputs=(prompts,))
    opt.check_load(dtype, device)
    source = opt.prompt_source(prompts, prompt_field, "completion")
    if source is not None:
        problems = verifiable_problems(source, limit, verifier)
    elif (found := defaults.problems(limit or DEFAULT_PROBLEMS)) is not None:
        problems = found
    else:
        raise InputFileError("give --prompts FILE: records with 'prompt' and 'answer'")
    texts, verifiers = [p.prompt for p in problems], [p.verify for p in problems]
    backends, tokenizer = load_models(models, backend, dtype, device)
    texts = _formatted(texts, list(backends.values()), chat_template)
    specs = dict(zip(backends, map(resolve_spec, models), strict=True))
    result = pass_at_k_curves(backends, tokenizer, texts, verifiers, config, specs=specs)
    _print(result, len(texts), config.sample.n)
    opt.write_json(json_out, result.to_json())


def _print(result: Any, n_problems: int, n: int) -> None:
    """The curves with their bootstrap intervals, and where the base catches each model."""
    from postlens.diffs.passk.compute import BOOTSTRAP

    level = BOOTSTRAP["level"]
    table = Table(title=f"pass@k on {n_problems} problems, n = {n} samples each "
                        f"[{level:.0%} bootstrap interval over problems]")  # fmt: skip
    table.add_column("k", justify="right")
    for name in result.curves:
        table.add_column(name, justify="right")
    for row in result.interval_rows():
        table.add_row(*(str(v) for v in row.values()))
    console = Console()
    console.print(table)
    base = next(iter(result.curves))
    for child, x in result.crossings(**BOOTSTRAP).items():
        console.print(crossing_text(base, child, x, n, level))
