"""``postlens substitute BASE CHILD...``: fork substitution decoding, pass@1 against τ.

Decodes with the base and hands every position whose base entropy exceeds τ to the child
(``base→post``), and the reverse (``post→base``), with a random-position control at the same
share (`postlens.diffs.causal.substitution`). Every option is a `SubstitutionConfig` field.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from postlens.cli import options as opt
from postlens.cli.family_command import family_command


def _show(console: Console, result: Any) -> None:
    for child, res in result.results.items():
        table = Table(title=f"fork substitution: base and {child}")
        for col in ("direction", "τ", "pass@1", "share handed over", "control pass@1"):
            table.add_column(col, justify="right")
        for r in res.rows:
            ctrl = "–" if r.control_pass_at_1 is None else f"{r.control_pass_at_1:.3f}"
            table.add_row(r.direction, r.tau_label, f"{r.pass_at_1:.3f}", f"{r.share:.3f}", ctrl)
        console.print(table)


substitute = family_command(
    "substitute", _show, children=("organism:rl",), read_inputs=opt.problems_input,
    exclude=opt.UNUSED_SAMPLING, names={"taus": "tau"},
)  # fmt: skip
