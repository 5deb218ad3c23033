"""``postlens steer BASE CHILD...``: steer the base along a persona direction or a vector, per α.

For each ``--alpha`` the base samples the problems with α·v added to its residual stream at
``--layer`` (`postlens.sampling.steering`); the table gives the verifier's pass rate, the share of each
style (on the organism) and the on-policy KL to the base and each child. The direction is the
base's ``--persona`` direction (on the organism: careful, sloppy or hasty) or ``--vector FILE``
(a ``.pt`` tensor or ``.npy`` array of d_model numbers). Every default lives in `SteerConfig`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from postlens.cli import options as opt
from postlens.cli.app import app, friendly_errors, setup_logging
from postlens.cli.config_options import with_config
from postlens.diffs.causal.steer import SteerConfig, read_vector


def print_sweep(console: Console, result: Any) -> None:
    """The sweep's rows as a table."""
    frame = result.to_frame()
    table = Table(title=f"{result.kind}: {result.axis}" + (
        f" at layer {result.layer}" if result.layer is not None else ""))  # fmt: skip
    for col in frame.columns:
        table.add_column(col, justify="right")
    for row in frame.itertuples(index=False):
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)


@app.command("steer")
@friendly_errors
@with_config(SteerConfig, exclude=("sample.source",), names={"alphas": "alpha"})
def steer(
    base: str = typer.Argument("organism:base", help="Base model spec (steered)."),
    children: list[str] = typer.Argument(None, help="Children to compare with (default sft, rl)."),
    vector: Path | None = typer.Option(None, help="A .pt / .npy vector instead of a persona."),
    prompts: Path | None = opt.PROBLEMS,
    backend: str = opt.BACKEND,
    dtype: str | None = opt.DTYPE,
    device: str | None = opt.DEVICE,
    json_out: Path | None = opt.JSON_OUT,
    verbose: bool = opt.VERBOSE,
    config: SteerConfig | None = None,
) -> None:
    """Does steering the base along a direction reproduce what SFT or RL did?"""
    setup_logging(verbose)

    cfg = config
    assert cfg is not None  # built by with_config from the options
    opt.check_outputs(json_out, inputs=(vector, prompts))
    opt.check_load(dtype, device)
    if vector is not None:  # read before any model loads
        cfg = dataclasses.replace(cfg, vector=read_vector(vector))
    fam = opt.load_children(base, children, ["organism:sft", "organism:rl"], backend, dtype, device)
    result = fam.steer(prompts, cfg)
    print_sweep(Console(), result)
    opt.write_json(json_out, result.to_json())
