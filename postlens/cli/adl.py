"""``postlens adl BASE CHILD...``: the Activation Difference Lens of each child.

δ_ℓ = mean(h_child − h_base) over the first ``--k`` tokens of generic text (the organism's
filler sentences, or ``--texts FILE``: one text a line), per layer; its top tokens under each
model's logit lens; and the base steered with α·δ at ``--layer`` on unrelated prompts (and the
problems' pass rate and style shares). Every default lives in `ADLConfig`.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from postlens.cli import options as opt
from postlens.cli.app import app, friendly_errors, setup_logging
from postlens.cli.config_options import with_config
from postlens.diffs.adl.compute import ADLConfig


@app.command("adl")
@friendly_errors
@with_config(ADLConfig, exclude=opt.UNUSED_SAMPLING, names={"alphas": "alpha"})
def adl(
    base: str = typer.Argument("organism:base", help="Base model spec."),
    children: list[str] = typer.Argument(None, help="Children (default organism:sft organism:rl)."),
    texts: Path | None = typer.Option(None, help="Generic texts, one a line."),
    prompts: Path | None = opt.PROBLEMS,
    backend: str = opt.BACKEND,
    dtype: str | None = opt.DTYPE,
    device: str | None = opt.DEVICE,
    json_out: Path | None = opt.JSON_OUT,
    verbose: bool = opt.VERBOSE,
    config: ADLConfig | None = None,
) -> None:
    """What does each child's activation difference on unrelated text say about its fine-tune?"""
    setup_logging(verbose)
    from postlens.errors import InputFileError

    cfg = config
    assert cfg is not None  # built by with_config from the options
    opt.check_outputs(json_out, inputs=(texts, prompts))
    opt.check_load(dtype, device)
    lines = None
    if texts is not None:
        if not texts.is_file():
            raise InputFileError(f"{texts}: file not found")
        lines = [t for t in texts.read_text(encoding="utf-8").splitlines() if t.strip()][
            : cfg.n_texts
        ]
    fam = opt.load_children(base, children, ["organism:sft", "organism:rl"], backend, dtype, device,
                            prompts)  # fmt: skip
    result = fam.adl(lines, cfg)
    console = Console()
    for child, res in result.results.items():
        table = Table(title=f"ADL: base and {child} (δ over the first {res.k} tokens)")
        for col in ("layer", "‖δ‖", "‖δ‖/‖h‖", "top tokens (base lens)", "top tokens (child lens)"):
            table.add_column(col, justify="right")
        for row in res.to_frame().itertuples(index=False):
            table.add_row(str(row.layer), f"{row.delta_norm:.3f}", f"{row.rel_norm:.3f}",
                          row.top_base, row.top_post)  # fmt: skip
        console.print(table)
        for r in res.rows:
            rate = "–" if r.pass_rate is None else f"{r.pass_rate:.3f}"
            console.print(f"α = {r.alpha:g} at layer {res.layer}: pass rate {rate}; "
                          f"sample {r.samples[0]!r}" if r.samples else f"α = {r.alpha:g}: {rate}")  # fmt: skip
    opt.write_json(json_out, result.to_json())
