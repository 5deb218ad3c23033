"""``postlens weights BASE POST``: weight shifts streamed from safetensors."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from postlens.cli.app import app, friendly_errors, setup_logging


def _frame_table(title: str, frame) -> Table:
    table = Table(title=title)
    cols = [
        c
        for c in ("layer", "module", "numel", "rel_norm", "frac_changed_tol", "max_abs")
        if c in frame
    ]
    for c in cols:
        table.add_column(c, justify="right")
    for row in frame.to_dict("records"):
        table.add_row(
            *(f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in cols)
        )
    return table


@app.command("weights")
@friendly_errors
def weights(
    base: str = typer.Argument("organism:base", help="Base model spec."),
    post: str = typer.Argument("organism:rl", help="Post-trained model spec."),
    other: str | None = typer.Option(
        None, "--other", help="A second child (e.g. the SFT model) for three-way use."
    ),
    atol: float = typer.Option(1e-5, help="|Δ| above this counts as changed."),
    rank: bool = typer.Option(False, help="Effective rank and subspace overlap of 2-D updates."),
    rank_r: int = typer.Option(8, help="Top singular subspace size for the overlap."),
    json_out: Path | None = typer.Option(None, "--json", help="Write every figure as JSON here."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Compare two checkpoints tensor by tensor; exit code 1 if tensors are missing or mismatched."""
    setup_logging(verbose)
    from postlens.diffs.weights import WeightDiffConfig, compare_children
    from postlens.io import write_json_atomic

    children = {"post": post} | ({"other": other} if other else {})
    family = compare_children(base, children, WeightDiffConfig(atol=atol, rank=rank, rank_r=rank_r))
    console = Console()
    for key, diff in family.children.items():
        s = diff.summary
        console.print(
            f"[bold]{diff.base} → {diff.post}[/bold]: rel_norm {s['rel_norm']:.4g} · changed "
            f"{s['frac_changed_tol']:.2%} (|Δ|>{atol:g}), exactly {s['frac_changed_exact']:.2%} · "
            f"{s['n_params']:,} params · {s['bytes_read'] / 2**20:.1f} MiB read in {s['seconds']:.2f} s"
        )
        console.print(_frame_table(f"{key}: by module", diff.by_module()))
        console.print(_frame_table(f"{key}: by layer", diff.by_layer()))
        for label, items in (
            ("only in base", diff.missing_in_post),
            ("only in post", diff.missing_in_base),
            ("shape mismatch", diff.shape_mismatches),
        ):
            if items:
                console.print(f"[red]{label}[/red]: {', '.join(items)}")
    if json_out is not None:
        payload = family.children["post"].to_json()
        if other:
            payload["other"] = family.children["other"].to_json()
            payload["update_cosine"] = family.cosines
        write_json_atomic(json_out, payload)
    if not all(d.ok for d in family.children.values()):
        raise typer.Exit(1)
