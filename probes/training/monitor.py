"""Monitors: probes that read a model in one forward pass on a fixed held-out batch.

Anything with a ``name`` and ``read(model, tokenizer, batch=None) -> dict[str, float]`` is a
monitor; the training callbacks (`postlens.probes.training.callbacks`) run a list of them. A monitor
owns its held-out batch (traces for a confidence probe, prompts for a persona direction: each
probe needs different data), and ``batch`` overrides it for one call. Readings are named
``"<monitor name>/<reading>"`` so that several monitors can share one log record.

Example:
    >>> import postlens as pl
    >>> from postlens.probes.confidence.trajectory import Trace
    >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
    >>> import torch
    >>> from postlens.probes.confidence.probe import ConfidenceProbe
    >>> from postlens.probes.provenance import Provenance
    >>> probe = ConfidenceProbe.fit(torch.randn(40, 128), torch.rand(40), Provenance.of(pair.post, 2), ridge=1.0)
    >>> traces = [Trace("Q: 12 + 34 = ?\\n", "2+4+0=6 write 6 carry 0 got 6", lambda t: "46" in t)]
    >>> monitor = ConfidenceMonitor(probe, traces)
    >>> sorted(monitor.read(pair.post, None))[-1]
    'confidence/overconfidence'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from postlens.errors import ConfigError
from postlens.probes.confidence.probe import ConfidenceProbe, cut_activations
from postlens.probes.confidence.trajectory import Trace
from postlens.probes.provenance import check_compatible, unwrap_model

if TYPE_CHECKING:
    from postlens.backends.base import ModelLike
    from postlens.models.types import Tokenizer


@runtime_checkable
class Monitor(Protocol):
    """A probe reading of a model, as named scalars.

    Attributes:
        name: prefix of the readings' names.
    """

    name: str

    def read(
        self, model: ModelLike, tokenizer: Tokenizer | None, batch: Any = None
    ) -> dict[str, float]:
        """Readings of `model` on the monitor's held-out batch (or on `batch`)."""
        ...


class ConfidenceMonitor:
    """The probe's confidence trajectory at the K+1 cuts of held-out traces, and overconfidence.

    Reads ``<name>/cut_<k/K>`` (mean reading at each cut) and ``<name>/overconfidence``
    (mean of Σ_k pred_k · w_k) for the first probe; with several probes (e.g. one per layer,
    ``comparison.probes.values()``), also ``<name>/L<layer>/overconfidence`` for each. All
    layers come from one forward pass per batch of traces.

    Args:
        probes: one probe or several (at different layers of the same model).
        traces: the fixed held-out traces.
        n_cuts: K.
        name: prefix of the readings.

    Example:
        >>> import torch
        >>> import postlens as pl
        >>> from postlens.probes.confidence.probe import ConfidenceProbe
        >>> from postlens.probes.provenance import Provenance
        >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
        >>> probe = ConfidenceProbe.fit(torch.randn(40, 128), torch.rand(40), Provenance.of(pair.post, 2), ridge=1.0)
        >>> traces = [Trace("Q: 1 + 2 = ?\\n", "1+2+0=3 write 3 carry 0 got 3", lambda t: "3" in t)]
        >>> len(ConfidenceMonitor(probe, traces).read(pair.post, None))
        7
    """

    def __init__(
        self,
        probes: ConfidenceProbe | Sequence[ConfidenceProbe],
        traces: Sequence[Trace],
        n_cuts: int = 5,
        name: str = "confidence",
    ) -> None:
        self.probes = [probes] if isinstance(probes, ConfidenceProbe) else list(probes)
        if not self.probes:
            raise ConfigError("a monitor needs at least one probe")
        if not traces:
            raise ConfigError("a monitor needs at least one held-out trace")
        if n_cuts < 1:
            raise ConfigError("n_cuts must be positive")
        self.traces, self.n_cuts, self.name = list(traces), n_cuts, name
        self.weights = np.linspace(0.5, -0.5, n_cuts + 1)

    @property
    def probe(self) -> ConfidenceProbe:
        """The main probe (the first)."""
        return self.probes[0]

    def read(
        self, model: ModelLike, tokenizer: Tokenizer, batch: Sequence[Trace] | None = None
    ) -> dict[str, float]:
        """Mean trajectory and overconfidence on the held-out traces (or on `batch`)."""
        traces = list(batch) if batch is not None else self.traces
        tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
        for probe in self.probes:
            # Shape only: the model under training drifts from the one the probe was fitted on.
            check_compatible(probe.provenance, model, fingerprint=False)
        layers = sorted({p.provenance.layer for p in self.probes})
        acts = cut_activations(unwrap_model(model), tokenizer, traces, self.n_cuts, layers)
        out: dict[str, float] = {}
        for i, probe in enumerate(self.probes):
            pred = probe.predict(acts[probe.provenance.layer]).numpy().reshape(len(traces), -1)
            overconfidence = float((pred @ self.weights).mean())
            if i == 0:
                for k, value in enumerate(pred.mean(0)):
                    out[f"{self.name}/cut_{k / self.n_cuts:.1f}"] = float(value)
                out[f"{self.name}/overconfidence"] = overconfidence
            if len(self.probes) > 1:
                out[f"{self.name}/L{probe.provenance.layer}/overconfidence"] = overconfidence
        return out
