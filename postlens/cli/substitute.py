"""``postlens substitute BASE CHILD...``: fork substitution decoding, pass@1 against τ.

Decodes with the base and hands every position whose base entropy exceeds τ to the child
(``base→post``), and the reverse (``post→base``), with a random-position control at the same
share (`postlens.diffs.causal.substitution`). Every default lives in `SubstitutionConfig`.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from postlens.cli import options as opt
from postlens.cli.app import app, friendly_errors, setup_logging
from postlens.diffs.causal.substitution import SubstitutionConfig

_D = SubstitutionConfig


@app.command("substitute")
@friendly_errors
def substitute(
    base: str = typer.Argument("organism:base", help="Base model spec."),
    children: list[str] = typer.Argument(None, help="Children (default organism:rl)."),
    tau: list[float] = typer.Option(list(_D.taus), help="Entropy thresholds, nats (repeat)."),
    control: bool = typer.Option(_D.control, help="Random positions at the same share."),
    prompts: Path | None = typer.Option(None, help="JSONL with 'prompt' and 'answer'."),
    limit: int = typer.Option(_D.limit, help="Problems sampled."),
    n: int = typer.Option(_D.n, help="Completions per problem."),
    max_new_tokens: int = opt.MAX_NEW_TOKENS,
    temperature: float = opt.TEMPERATURE,
    seed: int = opt.SEED,
    control_seed: int = typer.Option(_D.control_seed, help="Seed of the control's positions."),
    backend: str = opt.BACKEND,
    dtype: str | None = opt.DTYPE,
    device: str | None = opt.DEVICE,
    json_out: Path | None = opt.JSON_OUT,
    verbose: bool = opt.VERBOSE,
) -> None:
    """Does the child's gain come back when only the base's forks are handed to it?"""
    setup_logging(verbose)

    cfg = SubstitutionConfig(taus=tuple(tau), control=control, limit=limit, n=n,
                             max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
                             control_seed=control_seed)  # fmt: skip
    opt.check_outputs(json_out)
    opt.check_load(dtype, device)
    fam = opt.load_children(base, children, ["organism:rl"], backend, dtype, device)
    result = fam.substitute(prompts, cfg)
    console = Console()
    for child, res in result.results.items():
        table = Table(title=f"fork substitution: base and {child}")
        for col in ("direction", "τ", "pass@1", "share handed over", "control pass@1"):
            table.add_column(col, justify="right")
        for r in res.rows:
            ctrl = "–" if r.control_pass_at_1 is None else f"{r.control_pass_at_1:.3f}"
            table.add_row(r.direction, r.tau_label, f"{r.pass_at_1:.3f}", f"{r.share:.3f}", ctrl)
        console.print(table)
    opt.write_json(json_out, result.to_json())
