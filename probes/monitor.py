"""Monitors: probes that read a model in one forward pass on a fixed held-out batch.

Anything with a ``name`` and ``read(model, tokenizer) -> dict[str, float]`` is a monitor; the
training callbacks (`postlens.probes.callbacks`) run a list of them.

Example:
    >>> monitor = ConfidenceMonitor(probe, held_out_traces)  # doctest: +SKIP
    >>> monitor.read(model, tokenizer)  # doctest: +SKIP
    {'confidence/cut_0.0': 0.12, ..., 'confidence/overconfidence': -0.21}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from postlens.probes.confidence import ConfidenceProbe
from postlens.probes.trajectory import Trace


@runtime_checkable
class Monitor(Protocol):
    """A probe reading of a model, as named scalars."""

    name: str

    def read(self, model: Any, tokenizer: Any) -> dict[str, float]: ...


class ConfidenceMonitor:
    """The probe's confidence trajectory (at the K+1 cuts) on held-out traces, and its
    overconfidence Σ_k pred_k · w_k, from one forward pass per batch of traces."""

    def __init__(
        self,
        probe: ConfidenceProbe,
        traces: Sequence[Trace],
        n_cuts: int = 5,
        name: str = "confidence",
    ) -> None:
        if not traces:
            raise ValueError("a monitor needs at least one held-out trace")
        self.probe, self.traces, self.n_cuts, self.name = probe, list(traces), n_cuts, name
        self.weights = np.linspace(0.5, -0.5, n_cuts + 1)

    def read(self, model: Any, tokenizer: Any) -> dict[str, float]:
        pred = self.probe.cut_predictions(model, tokenizer, self.traces, self.n_cuts)
        mean = pred.mean(0)
        out = {f"{self.name}/cut_{k / self.n_cuts:.1f}": float(v) for k, v in enumerate(mean)}
        out[f"{self.name}/overconfidence"] = float((pred @ self.weights).mean())
        return out
