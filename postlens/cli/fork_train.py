"""``postlens fork-train BASE CHILD...``: train copies of the base at the child's forks only.

Copies of the base are trained (KL(child ‖ θ) by default) at the fork positions of the child's
own samples, and at as many random positions as the control, one run per ``--seed-run``; the
table gives each copy's pass@1 and the share of the child's pass@1 gain it recovers
(`postlens.diffs.causal.fork_training`). Every default lives in `ForkTrainConfig`.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from postlens.cli import options as opt
from postlens.cli.app import app, friendly_errors, setup_logging
from postlens.diffs.causal.fork_training import ForkTrainConfig

_D = ForkTrainConfig


@app.command("fork-train")
@friendly_errors
def fork_train(
    base: str = typer.Argument("organism:base", help="Base model spec (copied and trained)."),
    children: list[str] = typer.Argument(None, help="Children (default organism:rl)."),
    steps: int = typer.Option(_D.steps, help="Optimisation steps (full batch)."),
    lr: float = typer.Option(_D.lr, help="AdamW learning rate."),
    loss: str = typer.Option(_D.loss, help="kl (KL(child ‖ θ)) or ce (the child's argmax)."),
    seed_run: list[int] = typer.Option(list(_D.seeds), help="Run seeds (repeat the option)."),
    train: int = typer.Option(_D.train, help="Training problems the child samples."),
    n: int = typer.Option(_D.n, help="Child completions per training problem."),
    js_threshold: float = typer.Option(_D.js_threshold, help="A fork's JS threshold (nats)."),
    prompts: Path | None = typer.Option(None, help="JSONL with 'prompt' and 'answer'."),
    limit: int = typer.Option(_D.limit, help="Evaluation problems."),
    n_eval: int = typer.Option(_D.n_eval, help="Completions per evaluation problem."),
    max_new_tokens: int = opt.MAX_NEW_TOKENS,
    temperature: float = opt.TEMPERATURE,
    seed: int = opt.SEED,
    backend: str = opt.BACKEND,
    dtype: str | None = opt.DTYPE,
    device: str | None = opt.DEVICE,
    json_out: Path | None = opt.JSON_OUT,
    verbose: bool = opt.VERBOSE,
) -> None:
    """Does training the base at the child's forks alone recover the child's gain?"""
    setup_logging(verbose)

    cfg = ForkTrainConfig(steps=steps, lr=lr, loss=loss, seeds=tuple(seed_run), train=train, n=n,
                          js_threshold=js_threshold, limit=limit, n_eval=n_eval,
                          max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)  # fmt: skip
    opt.check_outputs(json_out)
    opt.check_load(dtype, device)
    fam = opt.load_children(base, children, ["organism:rl"], backend, dtype, device)
    result = fam.fork_train(prompts, cfg)
    console = Console()
    for child, res in result.results.items():
        table = Table(title=f"fork-targeted training toward {child}: base pass@1 "
                            f"{res.base_pass_at_1:.3f}, {child} {res.post_pass_at_1:.3f}")  # fmt: skip
        for col in ("positions", "seed", "n", "agreement before→after", "pass@1", "recovered"):
            table.add_column(col, justify="right")
        for r in res.rows:
            rec = "–" if r.recovered is None else f"{r.recovered:.2f}"
            table.add_row(r.positions, str(r.seed), str(r.n_positions),
                          f"{r.agreement_before:.3f}→{r.agreement_after:.3f}", f"{r.pass_at_1:.3f}", rec)  # fmt: skip
        console.print(table)
    opt.write_json(json_out, result.to_json())
