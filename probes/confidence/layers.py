"""Which layer reads confidence best: a probe per layer, fitted and compared on held-out traces.

`fit_layer_probes` fits a `ConfidenceProbe` (`postlens.probes.confidence.probe`) at each layer on the
same split of traces (by trace, so the cuts of one trace never straddle it) and compares their
held-out quality with a baseline that knows only the cut.

Example:
    >>> import postlens as pl
    >>> from postlens.probes.confidence.result import ConfidenceConfig
    >>> from postlens.probes.confidence.trajectory import Trace, TrajectoryConfig, behavioural_trajectories
    >>> fam = pl.load("organism:base", rl="organism:rl")
    >>> pair, cfg = fam["rl"], ConfidenceConfig(pl.SampleConfig(limit=6, max_new_tokens=60))
    >>> traces = fam.inputs.traces({"rl": pair.post}, fam.tokenizer, cfg)["rl"]  # sampled
    >>> cfg = TrajectoryConfig(n_cuts=2, n_samples=2, max_new_tokens=5)
    >>> trajectories = behavioural_trajectories(pair.post, None, traces, cfg)
    >>> comparison = fit_layer_probes(pair.post, None, traces, trajectories, layers=[1, 2])
    >>> comparison.to_frame()["probe"].tolist()  # held-out quality per layer, and the baseline
    ['linear', 'linear', 'baseline (cut only)']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from postlens.errors import ConfigError
from postlens.probes.confidence.metrics import evaluate
from postlens.probes.confidence.probe import ConfidenceProbe, _model_and_tokenizer, cut_activations
from postlens.probes.confidence.trajectory import Trace, TrajectoryResult
from postlens.probes.provenance import Provenance

if TYPE_CHECKING:
    from postlens.backends.base import ModelLike
    from postlens.models.types import Tokenizer


@dataclass
class LayerComparison:
    """Held-out quality of a probe at each layer, and the probes themselves.

    Attributes:
        rows: one dict of held-out metrics per layer (see `postlens.probes.confidence.metrics.evaluate`,
            plus ``overconfidence_pearson``, ``ridge`` and ``cv_mse``).
        probes: layer → probe (fitted on the training traces).
        best_layer: the layer with the lowest cross-validated error on the *training* traces
            (so the held-out metrics of the chosen layer are not selected on the test set).
        baseline: the same metrics for a probe that only knows the cut index (the training
            mean score at each cut): what "knowing how far along the trace is" already explains.
        target: behavioural scores of the held-out traces, ``[n_test, K+1]``.
        predictions: layer → probe readings at the cuts of the held-out traces.
        test_index: indices of the held-out traces.
    """

    rows: list[dict[str, Any]]
    probes: dict[int, ConfidenceProbe]
    best_layer: int
    baseline: dict[str, Any] = field(default_factory=dict)
    target: np.ndarray | None = None
    predictions: dict[int, np.ndarray] = field(default_factory=dict)
    test_index: np.ndarray | None = None

    @property
    def best_probe(self) -> ConfidenceProbe:
        return self.probes[self.best_layer]

    def tracking(self, layer: int | None = None) -> dict[str, list[float]]:
        """Held-out mean trajectory: behavioural vs the probe's (at `layer`, default best)."""
        layer = self.best_layer if layer is None else layer
        if self.target is None or layer not in self.predictions:
            return {}
        return {
            "behavioural": self.target.mean(0).tolist(),
            "probe": self.predictions[layer].mean(0).tolist(),
        }

    def to_frame(self) -> Any:
        """One row per layer (and a ``baseline`` row) of held-out metrics."""
        import pandas as pd

        rows = [{"probe": "linear", **r} for r in self.rows]
        return pd.DataFrame([*rows, {"probe": "baseline (cut only)", **self.baseline}])

    def to_json(self) -> dict[str, Any]:
        return {
            "best_layer": self.best_layer,
            "layers": self.rows,
            "baseline": self.baseline,
            "tracking": self.tracking(),
        }

    def _repr_html_(self) -> str:
        from postlens.viz.html import table

        rows = [*self.rows, {"layer": "baseline", **self.baseline}]
        return f"<div><b>confidence probes</b>, best layer {self.best_layer}{table(rows)}</div>"


def fit_layer_probes(
    model: ModelLike,
    tokenizer: Tokenizer,
    traces: Sequence[Trace],
    trajectories: TrajectoryResult,
    layers: Sequence[int] | None = None,
    test_fraction: float = 0.3,
    ridge: float | str = "auto",
    seed: int = 0,
    name: str | None = None,
    method: str = "ridge",
) -> LayerComparison:
    """Fit one probe per layer on a split of the traces and compare them on the held-out traces.

    Args:
        model: a `Backend` (e.g. ``pair.post``) or a bare HF model (then pass `tokenizer`).
        tokenizer: its tokenizer, or ``None`` for a `Backend`.
        traces: the traces `trajectories` was computed on, in the same order.
        trajectories: behavioural scores (the labels).
        layers: layers to try (default: all).
        test_fraction: share of traces held out.
        ridge: penalty, or ``"auto"`` (cross-validated on the training traces).
        seed: seed of the split.
        name: model name recorded in the probes' provenance.
        method: ``"ridge"`` or ``"logistic"``.

    Example:
        >>> import postlens as pl
        >>> from postlens.probes.confidence.result import ConfidenceConfig
        >>> fam = pl.load("organism:base", rl="organism:rl")
        >>> pair, cfg = fam["rl"], ConfidenceConfig(pl.SampleConfig(limit=6, max_new_tokens=60))
        >>> traces = fam.inputs.traces({"rl": pair.post}, fam.tokenizer, cfg)["rl"]  # sampled
        >>> from postlens.probes.confidence.trajectory import TrajectoryConfig, behavioural_trajectories
        >>> cfg = TrajectoryConfig(n_cuts=2, n_samples=2, max_new_tokens=5)
        >>> trajectories = behavioural_trajectories(pair.post, None, traces, cfg)
        >>> comparison = fit_layer_probes(pair.post, None, traces, trajectories)
        >>> frame = comparison.to_frame()  # one row per layer, and the cut-only baseline
        >>> len(frame), comparison.best_layer in range(4), len(comparison.test_index)
        (5, True, 2)
    """
    if not 0 < test_fraction < 1:
        raise ConfigError("test_fraction must be in (0, 1)")
    if len(traces) != trajectories.scores.shape[0]:
        raise ConfigError(f"{len(traces)} traces but {trajectories.scores.shape[0]} trajectories")
    hf_model, tokenizer = _model_and_tokenizer(model, tokenizer)
    layers = list(layers if layers is not None else range(hf_model.config.num_hidden_layers))
    per = trajectories.scores.shape[1]
    acts = cut_activations(hf_model, tokenizer, traces, per - 1, layers)
    labels = torch.tensor(trajectories.scores.reshape(-1), dtype=torch.float32)
    order = np.random.default_rng(seed).permutation(len(traces))
    n_test = min(len(traces) - 2, max(1, int(round(test_fraction * len(traces)))))
    test = np.sort(order[:n_test])
    trace_of_row = np.repeat(np.arange(len(traces)), per)
    is_test = np.isin(trace_of_row, test)
    cut = np.tile(np.arange(per), len(traces))[is_test]
    target = trajectories.scores[test]
    final_right = (
        trajectories.correct[test] if trajectories.correct is not None else target[:, -1] >= 0.5
    )
    weights = trajectories.config.weights

    def score(pred: np.ndarray) -> dict[str, Any]:
        grid = pred.reshape(-1, per)
        oc_pearson = evaluate(grid @ weights, target @ weights)["pearson"]
        metrics = evaluate(pred, target.reshape(-1), final_right, grid[:, -1], cut)
        return {**metrics, "overconfidence_pearson": oc_pearson}

    cut_means = trajectories.scores[np.setdiff1d(np.arange(len(traces)), test)].mean(0)
    baseline = score(np.tile(cut_means, n_test))
    rows, probes, predictions = [], {}, {}
    for layer in layers:
        probe = ConfidenceProbe.fit(
            acts[layer][~is_test],
            labels[~is_test],
            Provenance.of(hf_model, layer, name),
            ridge,
            groups=trace_of_row[~is_test],
            seed=seed,
            method=method,
        )
        pred = probe.predict(acts[layer][is_test]).numpy()
        rows.append({"layer": layer, **score(pred), "ridge": probe.ridge, "cv_mse": probe.cv_mse})
        probes[layer], predictions[layer] = probe, pred.reshape(-1, per)
    best = min(rows, key=lambda r: r["cv_mse"] if r["cv_mse"] is not None else -_nz(r))["layer"]
    return LayerComparison(rows, probes, best, baseline, target, predictions, test)


def _nz(row: dict[str, Any]) -> float:
    """Held-out Pearson, for choosing a layer when no CV error exists (a fixed ridge)."""
    return -1.0 if row["pearson"] is None else row["pearson"]
