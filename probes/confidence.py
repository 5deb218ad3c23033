"""Hidden-state confidence probes: the behavioural trajectory from one forward pass (ours).

A linear probe reads the residual stream at the truncation point (the last token kept) and
predicts the behavioural score there (the pass rate after the answer-forcing suffix). We fit
ridge least squares on the pass rate in closed form: the labels are rates in [0, 1], not binary
outcomes, a closed form fits tens of thousands of activations in milliseconds on a CPU with no
tuning loop, and predictions are clipped to [0, 1]. Features are standardised on the training
set; the probe stores that standardisation.

Example:
    >>> comparison = fit_layer_probes(model, tokenizer, traces, trajectories)  # doctest: +SKIP
    >>> probe = comparison.best_probe  # doctest: +SKIP
    >>> probe.predict_trajectory(model, tokenizer, traces[:1])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from postlens.probes.activations import resid_post
from postlens.probes.provenance import Provenance, load_artifact, save_artifact
from postlens.probes.trajectory import Trace, TrajectoryResult, cut_points


@dataclass
class ConfidenceProbe:
    """A linear probe: clip(((h − mean) / std) · w + b, 0, 1)."""

    w: Float[Tensor, " d_model"]
    b: float
    mean: Float[Tensor, " d_model"]
    std: Float[Tensor, " d_model"]
    provenance: Provenance

    @classmethod
    def fit(
        cls,
        acts: Float[Tensor, "n d_model"],
        labels: Float[Tensor, " n"],
        provenance: Provenance,
        ridge: float = 1.0,
    ) -> ConfidenceProbe:
        """Closed-form ridge regression of `labels` on standardised `acts`."""
        acts, labels = acts.double(), labels.double()
        mean, std = acts.mean(0), acts.std(0).clamp_min(1e-6)
        x = (acts - mean) / std
        y = labels - labels.mean()
        gram = x.T @ x + ridge * torch.eye(x.shape[1], dtype=x.dtype)
        w = torch.linalg.solve(gram, x.T @ y)
        return cls(w.float(), float(labels.mean()), mean.float(), std.float(), provenance)

    def predict(self, acts: Float[Tensor, "n d_model"]) -> Float[Tensor, " n"]:
        return (((acts.float() - self.mean) / self.std) @ self.w + self.b).clamp(0, 1)

    def save(self, path: str | Path) -> Path:
        config = {"kind": "confidence_probe", "b": self.b, "provenance": asdict(self.provenance)}
        return save_artifact(path, config, {"w": self.w, "mean": self.mean, "std": self.std})

    @classmethod
    def load(cls, path: str | Path) -> ConfidenceProbe:
        config, t = load_artifact(path)
        return cls(
            t["w"], float(config["b"]), t["mean"], t["std"], Provenance(**config["provenance"])
        )

    def cut_predictions(
        self, hf_model: Any, tokenizer: Any, traces: Sequence[Trace], n_cuts: int = 5
    ) -> np.ndarray:
        """The probe's reading at the K+1 cuts of each trace, ``[n_traces, K+1]``, one pass per batch."""
        layer = self.provenance.layer
        acts = cut_activations(hf_model, tokenizer, traces, n_cuts, [layer])[layer]
        return self.predict(acts).numpy().reshape(len(traces), n_cuts + 1)

    def predict_trajectory(
        self, hf_model: Any, tokenizer: Any, traces: Sequence[Trace]
    ) -> list[np.ndarray]:
        """The probe's reading at every token from the end of the prompt to the end of the reasoning."""
        self.provenance.check(hf_model)
        out = []
        for trace in traces:
            prompt_len = len(tokenizer(trace.prompt).input_ids)
            ids = torch.tensor([_full_ids(tokenizer, trace)])
            acts = resid_post(hf_model, ids, torch.ones_like(ids), [self.provenance.layer])[
                self.provenance.layer
            ][0]
            out.append(self.predict(acts[prompt_len - 1 :]).numpy())
        return out


def _full_ids(tokenizer: Any, trace: Trace) -> list[int]:
    return (
        tokenizer(trace.prompt).input_ids
        + tokenizer(trace.reasoning, add_special_tokens=False).input_ids
    )


def cut_activations(
    hf_model: Any,
    tokenizer: Any,
    traces: Sequence[Trace],
    n_cuts: int,
    layers: Sequence[int],
    batch_size: int = 32,
) -> dict[int, Tensor]:
    """Residual stream at the last kept token of every cut: ``[n_traces * (K+1), d_model]`` per layer.

    One forward pass per trace covers all its cuts (the model is causal).
    """
    pad = tokenizer.pad_token_id
    chunks: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    for start in range(0, len(traces), batch_size):
        batch = traces[start : start + batch_size]
        seqs = [_full_ids(tokenizer, t) for t in batch]
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
        mask = (torch.arange(width)[None] < torch.tensor([len(s) for s in seqs])[:, None]).long()
        acts = resid_post(hf_model, ids, mask, layers)
        positions = [[n - 1 for _, n in cut_points(tokenizer, t, n_cuts)] for t in batch]
        rows = torch.tensor([i for i, p in enumerate(positions) for _ in p])
        cols = torch.tensor([c for p in positions for c in p])
        for layer in layers:
            chunks[layer].append(acts[layer][rows, cols])
    return {layer: torch.cat(v) for layer, v in chunks.items()}


def _auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Probability that a positive outranks a negative (ties count half)."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return None
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def _rank(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (as Spearman's correlation wants)."""
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
    _, inverse = np.unique(x, return_inverse=True)
    return (np.bincount(inverse, ranks) / np.bincount(inverse))[inverse]


def evaluate(
    pred: np.ndarray, target: np.ndarray, final_right: np.ndarray, final_pred: np.ndarray
) -> dict[str, float | None]:
    """Held-out quality: Pearson and Spearman with the behavioural score, AUROC, Brier, ECE."""
    pearson = (
        float(np.corrcoef(pred, target)[0, 1]) if pred.std() > 0 and target.std() > 0 else None
    )
    spearman = (
        float(np.corrcoef(_rank(pred), _rank(target))[0, 1])
        if pred.std() > 0 and target.std() > 0
        else None
    )
    bins = np.clip((pred * 10).astype(int), 0, 9)
    ece = sum(
        abs(pred[bins == b].mean() - target[bins == b].mean()) * (bins == b).mean()
        for b in range(10)
        if (bins == b).any()
    )
    return {
        "pearson": pearson,
        "spearman": spearman,
        "auroc_final_right": _auroc(final_pred, final_right),
        "brier": float(np.mean((pred - target) ** 2)),
        "ece": float(ece),
    }


@dataclass
class LayerComparison:
    """Held-out quality of a probe at each layer, and the probes themselves."""

    rows: list[dict[str, Any]]
    probes: dict[int, ConfidenceProbe]
    best_layer: int

    @property
    def best_probe(self) -> ConfidenceProbe:
        return self.probes[self.best_layer]

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.rows)

    def to_json(self) -> dict[str, Any]:
        return {"best_layer": self.best_layer, "layers": self.rows}

    def _repr_html_(self) -> str:
        from postlens.viz.html import table

        return (
            f"<div><b>confidence probes</b>, best layer {self.best_layer}{table(self.rows)}</div>"
        )


def fit_layer_probes(
    hf_model: Any,
    tokenizer: Any,
    traces: Sequence[Trace],
    trajectories: TrajectoryResult,
    layers: Sequence[int] | None = None,
    test_fraction: float = 0.3,
    ridge: float = 1.0,
    seed: int = 0,
    name: str | None = None,
) -> LayerComparison:
    """Fit one probe per layer on a split of the traces and compare them on the held-out traces."""
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be in (0, 1)")
    layers = list(layers if layers is not None else range(hf_model.config.num_hidden_layers))
    per = trajectories.scores.shape[1]
    acts = cut_activations(hf_model, tokenizer, traces, per - 1, layers)
    labels = torch.tensor(trajectories.scores.reshape(-1), dtype=torch.float32)
    order = np.random.default_rng(seed).permutation(len(traces))
    n_test = max(1, int(round(test_fraction * len(traces))))
    test_traces = np.sort(order[:n_test])
    is_test = np.isin(np.repeat(np.arange(len(traces)), per), test_traces)
    final = trajectories.scores[test_traces, -1] >= 0.5
    rows, probes = [], {}
    for layer in layers:
        probe = ConfidenceProbe.fit(
            acts[layer][~is_test], labels[~is_test], Provenance.of(hf_model, layer, name), ridge
        )
        pred = probe.predict(acts[layer][is_test]).numpy()
        rows.append(
            {
                "layer": layer,
                **evaluate(pred, labels[is_test].numpy(), final, pred.reshape(-1, per)[:, -1]),
            }
        )
        probes[layer] = probe
    best = max(rows, key=lambda r: -1 if r["pearson"] is None else r["pearson"])["layer"]
    return LayerComparison(rows, probes, best)
