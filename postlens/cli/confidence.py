"""``postlens confidence BASE CHILD...``: confidence trajectories and the probes that read them.

Each model's reasoning traces (the family's own: on the organism, sampled on its held-out
problems; else sampled on ``--prompts`` problems or the family's) are cut at K points; at each
cut an answer is forced and checked, and a probe per layer learns to read that score from the
hidden states (`postlens.probes.confidence`). Every option is a `ConfidenceConfig` field.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from postlens.cli import options as opt
from postlens.cli.family_command import family_command


def _show(console: Console, result: Any) -> None:
    table = Table(title="Confidence trajectories (score at each cut) and the best layer's probe")
    for col in ("model", "traces", "trajectory", "overconfidence", "best layer"):
        table.add_column(col, justify="right")
    for name, m in result.models.items():
        trajectory = " ".join(f"{x:.2f}" for x in m.mean_trajectory)
        table.add_row(name, str(m.n_traces), trajectory, f"{m.overconfidence:+.3f}",
                      str(m.best_layer))  # fmt: skip
    console.print(table)


confidence = family_command(
    "confidence", _show, read_inputs=opt.problems_input,
    exclude=("sample.n", "sample.source", "sample.top_p", "sample.temperature"),
)  # fmt: skip
