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
from postlens.diffs.adl.compute import ADLConfig

_D = ADLConfig


@app.command("adl")
@friendly_errors
def adl(
    base: str = typer.Argument("organism:base", help="Base model spec."),
    children: list[str] = typer.Argument(None, help="Children (default organism:sft organism:rl)."),
    texts: Path | None = typer.Option(None, help="Generic texts, one a line."),
    k: int = typer.Option(_D.k, help="First token positions averaged over."),
    n_texts: int = typer.Option(_D.n_texts, help="Generic texts used."),
    layer: int | None = typer.Option(_D.layer, help="Layer read and steered (default: middle)."),
    top: int = typer.Option(_D.top, help="Lens tokens listed."),
    alpha: list[float] = typer.Option(list(_D.alphas), help="α values (repeat the option)."),
    steered: str = typer.Option(_D.steered, help="Model steered: base or post."),
    prompts: Path | None = typer.Option(None, help="JSONL with 'prompt' and 'answer'."),
    limit: int = typer.Option(_D.limit, help="Problems sampled per α."),
    n_prompts: int = typer.Option(_D.n_prompts, help="Unrelated prompts sampled per α."),
    n: int = typer.Option(_D.n, help="Completions per problem and α."),
    max_new_tokens: int = typer.Option(_D.max_new_tokens, help="Length of completions."),
    temperature: float = opt.TEMPERATURE,
    seed: int = opt.SEED,
    backend: str = opt.BACKEND,
    dtype: str | None = opt.DTYPE,
    device: str | None = opt.DEVICE,
    json_out: Path | None = opt.JSON_OUT,
    verbose: bool = opt.VERBOSE,
) -> None:
    """What does each child's activation difference on unrelated text say about its fine-tune?"""
    setup_logging(verbose)
    from postlens.errors import InputFileError

    cfg = ADLConfig(k=k, n_texts=n_texts, layer=layer, top=top, alphas=tuple(alpha),
                    steered=steered, limit=limit, n_prompts=n_prompts, n=n,
                    max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)  # fmt: skip
    opt.check_outputs(json_out)
    opt.check_load(dtype, device)
    lines = None
    if texts is not None:
        if not texts.is_file():
            raise InputFileError(f"{texts}: file not found")
        lines = [t for t in texts.read_text(encoding="utf-8").splitlines() if t.strip()][:n_texts]
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
