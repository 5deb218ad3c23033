"""``postlens extrapolate BASE CHILD...``: models along a child's weight update, per α.

θ_start + α·(θ_child − θ_start) for each α (`postlens.diffs.causal.extrapolate`): pass rate,
label shares and the on-policy KL to every model. Every option is an `ExtrapolateConfig` field.
"""

from __future__ import annotations

from postlens.cli import options as opt
from postlens.cli.family_command import family_command
from postlens.cli.steer import print_sweep

extrapolate = family_command(
    "extrapolate", print_sweep, read_inputs=opt.problems_input,
    exclude=opt.UNUSED_SAMPLING, names={"alphas": "alpha", "child": "to"},
)  # fmt: skip
