"""``postlens extrapolate BASE CHILD...``: models at θ_start + α·(θ_to − θ_start), per α.

``--to`` names the child extrapolated towards (default: the last), ``--start`` the model at
α = 0 (``base`` or another child: e.g. ``--start sft --to rl``). Each α's model is written
tensor by tensor into one working model; the table gives its pass rate, style shares (on the
organism) and on-policy KL to every model. Every default lives in `ExtrapolateConfig`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from rich.console import Console

from postlens.cli import options as opt
from postlens.cli.app import app, friendly_errors, setup_logging
from postlens.cli.steer import print_sweep
from postlens.diffs.causal.extrapolate import ExtrapolateConfig

_D = ExtrapolateConfig


@app.command("extrapolate")
@friendly_errors
def extrapolate(
    base: str = typer.Argument("organism:base", help="Base model spec."),
    children: list[str] = typer.Argument(None, help="Children (default organism:sft organism:rl)."),
    to: str | None = typer.Option(None, help="The child at α = 1 (default: the last)."),
    start: str = typer.Option(_D.start, help="The model at α = 0: base or a child's name."),
    alpha: list[float] = typer.Option(list(_D.alphas), help="α values (repeat the option)."),
    prompts: Path | None = typer.Option(None, help="JSONL with 'prompt' and 'answer'."),
    limit: int = typer.Option(_D.limit, help="Problems sampled."),
    n: int = typer.Option(_D.n, help="Completions per problem and α."),
    max_new_tokens: int = opt.MAX_NEW_TOKENS,
    temperature: float = opt.TEMPERATURE,
    seed: int = opt.SEED,
    backend: str = opt.BACKEND,
    dtype: str | None = opt.DTYPE,
    device: str | None = opt.DEVICE,
    json_out: Path | None = opt.JSON_OUT,
    verbose: bool = opt.VERBOSE,
) -> None:
    """Interpolate and extrapolate the weights along a child's update: behaviour and KL."""
    setup_logging(verbose)

    cfg = ExtrapolateConfig(alphas=tuple(alpha), start=start, limit=limit, n=n,
                            max_new_tokens=max_new_tokens, temperature=temperature,
                            seed=seed)  # fmt: skip
    opt.check_outputs(json_out)
    opt.check_load(dtype, device)
    fam = opt.load_children(base, children, ["organism:sft", "organism:rl"], backend, dtype, device,
                            prompts)  # fmt: skip
    cfg = dataclasses.replace(cfg, child=to or fam.children[-1])
    result = fam.extrapolate(config=cfg)
    print_sweep(Console(), result)
    opt.write_json(json_out, result.to_json())
