"""``postlens fork-train BASE CHILD...``: train copies of the base at the child's forks only.

Copies of the base are trained (KL(child ‖ θ) by default) at the fork positions of the child's
own samples, and at as many random positions as the control, one run per ``--seed-run``; the
table gives each copy's pass@1 and the share of the child's pass@1 gain it recovers
(`postlens.diffs.causal.fork_training`). Every option is a `ForkTrainConfig` field.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from postlens.cli import options as opt
from postlens.cli.family_command import family_command


def _show(console: Console, result: Any) -> None:
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


fork_train = family_command(
    "fork_train", _show, children=("organism:rl",), read_inputs=opt.problems_input,
    exclude=opt.UNUSED_SAMPLING, names={"seeds": "seed-run"},
)  # fmt: skip
