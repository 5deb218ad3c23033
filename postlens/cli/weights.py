"""``postlens weights BASE POST``: weight shifts streamed from safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from postlens.cli import options as opt
from postlens.cli.app import app, friendly_errors, setup_logging
from postlens.cli.config_options import with_config
from postlens.diffs.weights.compare import WeightDiffConfig


def _rows_table(title: str, rows: list[dict]) -> Table:
    """A `WeightDiff.grouped` table (plain rows: printing them needs no pandas)."""
    table = Table(title=title)
    names = ("layer", "module", "numel", "rel_norm", "frac_changed_tol", "max_abs")
    cols = [c for c in names if rows and c in rows[0]]
    for c in cols:
        table.add_column(c, justify="right")
    for row in rows:
        table.add_row(*(_cell(row[c]) for c in cols))
    return table


#: Matrices listed in the rank table (the JSON has every one).
RANKED = 12


def _rank_table(title: str, tensors: list[Any]) -> Table:
    table = Table(title=title)
    cols = ("layer", "rel_norm", "effective_rank", "entropy_rank", "subspace_overlap")
    table.add_column("tensor", no_wrap=True)
    for c in cols:
        table.add_column(c, justify="right")
    for t in tensors:
        tail = ".".join(t.name.split(".")[-2:])  # e.g. q_proj.weight: the layer has a column
        table.add_row(tail, *(_cell(getattr(t, c)) for c in cols))
    return table


def _cell(value: object) -> str:
    if value is None:
        return "other"  # embeddings, final norm, unembedding: outside the layers
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@app.command("weights")
@friendly_errors
@with_config(WeightDiffConfig)
def weights(
    base: str = typer.Argument("organism:base", help="Base model spec."),
    post: str = typer.Argument("organism:rl", help="Post-trained model spec."),
    other: str | None = typer.Option(
        None, "--other", help="A second child (e.g. the SFT model) for three-way use."
    ),
    allow_nonfinite: bool = typer.Option(
        False, help="Exit 0 even when a checkpoint holds NaN or ±inf weights."
    ),
    dtype: str | None = typer.Option(
        None, help="Accepted and checked like the other commands'; changes nothing here."
    ),
    device: str | None = typer.Option(
        None, help="Accepted and checked like the other commands'; changes nothing here."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write every figure as JSON here."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
    config: WeightDiffConfig | None = None,
) -> None:
    """Compare checkpoints tensor by tensor; exit 1 if tensors are missing, mismatched or non-finite.

    Weights are streamed from the safetensors files and reduced in float64 on the CPU, whatever
    their storage dtype: ``--dtype`` and ``--device`` are accepted (so one command line works
    for every command) and refused when invalid, but change no figure.
    """
    setup_logging(verbose)
    opt.check_load(dtype, device)
    from postlens.diffs.weights.compare import compare_children

    opt.check_outputs(json_out)
    children = {"post": post} | ({"other": other} if other else {})
    family = compare_children(base, children, config)
    console = Console()
    failed = False
    for key, diff in family.children.items():
        failed |= _print_child(console, key, diff, allow_nonfinite)
    opt.write_json(json_out, family.to_json())
    if failed:
        raise typer.Exit(1)


def _print_child(console: Console, key: str, diff: Any, allow_nonfinite: bool) -> bool:
    """Print one child's figures; True when the comparison is not clean."""
    for label, items in (
        ("only in base", diff.missing_in_post),
        ("only in post", diff.missing_in_base),
        ("shape or dtype mismatch", diff.shape_mismatches),
    ):
        if items:
            console.print(f"[red]{label}[/red] ({len(items)}): {', '.join(items[:20])}")
    if diff.odd_dtypes:
        console.print(
            f"[yellow]stored in another dtype than the rest[/yellow] ({len(diff.odd_dtypes)}), "
            f"compared after upcasting: {', '.join(diff.odd_dtypes[:20])}"
        )
    if diff.totals is None:
        console.print(f"[red]{diff.base} → {diff.post}: no tensor in common to compare[/red]")
        return True
    s = diff.summary()
    console.print(
        f"[bold]{diff.base} → {diff.post}[/bold]: rel_norm {s.rel_norm:.4g} · changed "
        f"{s.frac_changed_tol:.2%} (|Δ|>{s.atol:g}), exactly {s.frac_changed_exact:.2%} · "
        f"{s.n_params:,} params · {s.bytes_read / 2**20:.1f} MiB read in {s.seconds:.2f} s"
    )
    if s.resolution_note:
        console.print(f"  {s.resolution_note}")
    console.print(_rows_table(f"{key}: by module", diff.grouped("module")))
    console.print(_rows_table(f"{key}: by layer", diff.grouped("layer")))
    ranked = [t for t in diff.tensors if t.effective_rank is not None]
    if ranked:  # --rank: the most-changed matrices' update rank (every tensor is in the JSON)
        console.print(_rank_table(f"{key}: update rank of the {RANKED} most-changed matrices",
                                  sorted(ranked, key=lambda t: -t.rel_norm)[:RANKED]))  # fmt: skip
    bad = [t for t in diff.tensors if t.nan_count or t.inf_count]
    if bad:
        names = ", ".join(f"{t.name} ({t.nan_count} NaN, {t.inf_count} inf)" for t in bad[:10])
        console.print(
            f"[red]non-finite weights[/red] in {len(bad)} tensor(s), left out of every figure: "
            f"{names}" + ("" if allow_nonfinite else " (--allow-nonfinite to exit 0)")
        )
    return not diff.ok or (bool(bad) and not allow_nonfinite)
