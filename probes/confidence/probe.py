"""Hidden-state confidence probes: the behavioural trajectory from one forward pass (ours).

A linear probe reads the residual stream after block ℓ (``blocks.ℓ.hook_resid_post``) at the
truncation point, the last token kept before the answer-forcing suffix, and predicts the
behavioural score there (the pass rate after the suffix, `postlens.probes.confidence.trajectory`).

Why ridge least squares on the pass rate by default, not logistic regression: squared error on a
rate is the Brier score we evaluate; the fit is closed form and deterministic (one Gram matrix
and one eigendecomposition per fold), so the penalty is chosen by exact cross-validation over
its whole path at the cost of about one fit, with folds split by *trace* (the cuts of one trace
share a prefix and would leak across folds), and nothing can fail to converge. Measured
(`benchmarks/bench_probes.py`, 1 thread, shared CPU): 50,000 x 128 activations fit in 0.24 s
with the penalty cross-validated; 50,000 x 1024 in 9 s, where the Gram matrix (5.7 s alone)
dominates. The alternative, ``method="logistic"`` (soft-label cross-entropy by L-BFGS,
`postlens.probes.confidence.linear`), is the right likelihood for a rate and is offered too: at a fixed
penalty it was faster at d = 1024 (2.9 s; 19 s with its penalty cross-validated) and more
accurate on synthetic data with a logistic link (held-out r 0.998 vs 0.984); compare both
on your data with the ``cv_mse`` they report (the same error for both). Predictions lie in
[0, 1] (clipped for ridge). Features are standardised on the training set, and the probe stores
that standardisation.

Example (a sketch: real probes want hundreds of traces and ``n_samples=10``):
    >>> import postlens as pl
    >>> from postlens.probes.confidence.result import ConfidenceConfig
    >>> fam = pl.load("organism:base", rl="organism:rl")
    >>> pair, cfg = fam["rl"], ConfidenceConfig(pl.SampleConfig(limit=6, max_new_tokens=60))
    >>> traces = fam.inputs.traces({"rl": pair.post}, fam.tokenizer, cfg)["rl"]  # sampled
    >>> from postlens.probes.confidence.trajectory import TrajectoryConfig, behavioural_trajectories
    >>> cfg = TrajectoryConfig(n_cuts=2, n_samples=2, max_new_tokens=5)
    >>> trajectories = behavioural_trajectories(pair.post, None, traces, cfg)
    >>> from postlens.probes.confidence.layers import fit_layer_probes  # one probe per layer, compared
    >>> probe = fit_layer_probes(pair.post, None, traces, trajectories, layers=[1, 2]).best_probe
    >>> reading = probe.predict_trajectory(pair.post, traces[:1])[0]  # one reading per token
    >>> reading.ndim, bool((0 <= reading).all() and (reading <= 1).all())
    (1, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from postlens.errors import ConfigError
from postlens.probes.confidence.linear import apply_link, fit_linear
from postlens.probes.confidence.metrics import evaluate  # noqa: F401  (re-exported: tests and notebooks)
from postlens.probes.confidence.trajectory import Trace, cut_points
from postlens.probes.provenance import (
    Provenance,
    check_compatible,
    load_artifact,
    save_artifact,
    unwrap_model,
)
from postlens.probes.readings import resid_post

if TYPE_CHECKING:
    from postlens.backends.base import ModelLike
    from postlens.models.types import Tokenizer


@dataclass
class ConfidenceProbe:
    """A linear probe: clip(((h − mean) / std) · w + b, 0, 1) on one layer's residual stream.

    Attributes:
        w: weights on standardised features.
        b: intercept.
        mean: feature means of the training activations.
        std: feature standard deviations of the training activations.
        provenance: the model, layer and hook it was fitted on.
        ridge: the penalty used.
        cv_mse: cross-validated mean squared error at that penalty (``None`` if not run).
        link: ``"clip"`` (ridge: clip to [0, 1]) or ``"sigmoid"`` (logistic).
    """

    w: Float[Tensor, " d_model"]
    b: float
    mean: Float[Tensor, " d_model"]
    std: Float[Tensor, " d_model"]
    provenance: Provenance
    ridge: float = 1.0
    cv_mse: float | None = None
    link: str = "clip"

    @classmethod
    def fit(
        cls,
        acts: Float[Tensor, "n d_model"],
        labels: Float[Tensor, " n"],
        provenance: Provenance,
        ridge: float | str = "auto",
        groups: Sequence[int] | np.ndarray | None = None,
        folds: int = 5,
        seed: int = 0,
        method: str = "ridge",
    ) -> ConfidenceProbe:
        """Fit the probe: ridge in closed form (default) or logistic by L-BFGS.

        Args:
            acts: activations, one row per cut.
            labels: behavioural pass rates in [0, 1].
            provenance: where the activations come from.
            ridge: the penalty (ridge: x n rows; logistic: L2 on the mean loss), or
                ``"auto"`` to choose it by cross-validation.
            groups: a group id per row (e.g. the trace index); folds never split a group.
            folds: cross-validation folds.
            seed: seed of the fold assignment.
            method: ``"ridge"`` or ``"logistic"`` (see `postlens.probes.confidence.linear`).

        Example (the scores: pass rates at cuts 0, 1/2 and 1 of each trace):
            >>> import postlens as pl
            >>> from postlens.probes.confidence.result import ConfidenceConfig
            >>> fam = pl.load("organism:base", rl="organism:rl")
            >>> pair, cfg = fam["rl"], ConfidenceConfig(pl.SampleConfig(limit=3, max_new_tokens=60))
            >>> traces = fam.inputs.traces({"rl": pair.post}, fam.tokenizer, cfg)["rl"]  # sampled
            >>> acts = cut_activations(pair.post, None, traces, n_cuts=2, layers=[2])[2]
            >>> scores = torch.tensor([0.0, 0.0, 1.0] * 3)
            >>> groups = [0, 0, 0, 1, 1, 1, 2, 2, 2]  # folds never split a trace
            >>> probe = ConfidenceProbe.fit(acts, scores, Provenance.of(pair.post, 2), groups=groups)
            >>> probe.predict(acts).shape, probe.cv_mse is not None
            (torch.Size([9]), True)
        """
        if acts.ndim != 2 or labels.shape != (acts.shape[0],):
            raise ConfigError(
                f"acts must be [n, d] and labels [n]; got {tuple(acts.shape)}, "
                f"{tuple(labels.shape)}"
            )
        if acts.shape[0] < 2:
            raise ConfigError("a probe needs at least two rows")
        if acts.shape[1] != provenance.d_model:
            raise ConfigError(f"acts have width {acts.shape[1]}, provenance {provenance.d_model}")
        x = acts.detach().cpu().float()
        mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
        y = labels.detach().cpu().float()
        fit = fit_linear((x - mean) / std, y, method, ridge, groups, folds, seed)
        return cls(fit.w, fit.b, mean, std, provenance, fit.penalty, fit.cv_mse, fit.link)

    def predict(self, acts: Float[Tensor, "n d_model"]) -> Float[Tensor, " n"]:
        """The probe's reading (a predicted pass rate in [0, 1]) for each row."""
        return apply_link(
            ((acts.float().cpu() - self.mean) / self.std) @ self.w + self.b, self.link
        )

    def save(self, path: str | Path) -> Path:
        """Write the probe with its provenance (``config.json`` + ``model.safetensors``)."""
        config = {
            "kind": "confidence_probe",
            "b": self.b,
            "ridge": self.ridge,
            "cv_mse": self.cv_mse,
            "link": self.link,
            "provenance": asdict(self.provenance),
        }
        return save_artifact(path, config, {"w": self.w, "mean": self.mean, "std": self.std})

    @classmethod
    def load(cls, path: str | Path) -> ConfidenceProbe:
        """Read a probe written by `save` (safetensors: nothing is unpickled)."""
        config, t = load_artifact(path)
        if config.get("kind") != "confidence_probe":
            raise ConfigError(f"{path} holds a {config.get('kind')!r}, not a confidence probe")
        return cls(
            t["w"],
            float(config["b"]),
            t["mean"],
            t["std"],
            Provenance(**config["provenance"]),
            float(config.get("ridge", 1.0)),
            config.get("cv_mse"),
            config.get("link", "clip"),
        )

    def cut_predictions(
        self,
        model: ModelLike,
        tokenizer: Tokenizer | None,
        traces: Sequence[Trace],
        n_cuts: int = 5,
    ) -> Float[np.ndarray, "n_traces cuts"]:
        """The probe's reading at the K+1 cuts of each trace, one forward pass per batch.

        The shape is checked, not the fingerprint: this runs inside training loops, where the
        model drifts from the one the probe was fitted on by design.
        """
        hf_model, tokenizer = _model_and_tokenizer(model, tokenizer)
        check_compatible(self.provenance, hf_model, fingerprint=False)
        layer = self.provenance.layer
        acts = cut_activations(hf_model, tokenizer, traces, n_cuts, [layer])[layer]
        return self.predict(acts).numpy().reshape(len(traces), n_cuts + 1)

    def predict_trajectory(
        self,
        model: ModelLike,
        traces_or_tokenizer: Tokenizer | Sequence[Trace] | None,
        traces: Sequence[Trace] | None = None,
        batch_size: int = 32,
    ) -> list[Float[np.ndarray, " tokens"]]:
        """The probe's reading at every token, from the end of the prompt to the end of the
        reasoning (not only at the K cut points).

        Call it as ``predict_trajectory(pair.post, traces)`` on a `Backend`, or as
        ``predict_trajectory(hf_model, tokenizer, traces)`` on a bare model. Entry ``i`` of a
        trace's array is the reading after ``i`` reasoning tokens, so cut k is entry
        ``round(k * n_reasoning / K)``. Raises on a model of another shape; warns when the
        model is not the one the probe was fitted on.
        """
        given = cast("Sequence[Trace]", traces_or_tokenizer if traces is None else traces)
        tokenizer = None if traces is None else cast("Tokenizer", traces_or_tokenizer)
        traces = list(given)
        hf_model, tokenizer = _model_and_tokenizer(model, tokenizer)
        check_compatible(self.provenance, hf_model)
        layer, out = self.provenance.layer, []
        for start in range(0, len(traces), batch_size):
            batch = traces[start : start + batch_size]
            seqs = [_full_ids(tokenizer, t) for t in batch]
            ids, mask = _pad(seqs, tokenizer.pad_token_id)
            acts = resid_post(hf_model, ids, mask, [layer])[layer]
            for row, (trace, seq) in enumerate(zip(batch, seqs, strict=True)):
                prompt_len = len(tokenizer(trace.prompt).input_ids)
                out.append(self.predict(acts[row, prompt_len - 1 : len(seq)]).numpy())
        return out


def _model_and_tokenizer(model: ModelLike, tokenizer: Tokenizer | None) -> tuple[Any, Any]:
    """A bare HF model and its tokenizer, from a `Backend` or from (model, tokenizer)."""
    if tokenizer is None:
        tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ConfigError("pass the tokenizer of a bare model (a Backend carries its own)")
    return unwrap_model(model), tokenizer


def _full_ids(tokenizer: Tokenizer, trace: Trace) -> list[int]:
    return (
        tokenizer(trace.prompt).input_ids
        + tokenizer(trace.reasoning, add_special_tokens=False).input_ids
    )


def _pad(seqs: list[list[int]], pad: int | None) -> tuple[Tensor, Tensor]:
    """Right-padded ids and mask (right padding keeps positions of real tokens unchanged)."""
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), pad or 0, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
    mask = (torch.arange(width)[None] < torch.tensor([len(s) for s in seqs])[:, None]).long()
    return ids, mask


def cut_activations(
    model: ModelLike,
    tokenizer: Tokenizer,
    traces: Sequence[Trace],
    n_cuts: int,
    layers: Sequence[int],
    batch_size: int = 32,
) -> dict[int, Float[Tensor, "rows d_model"]]:
    """Residual stream at the last kept token of every cut: ``[n_traces * (K+1), d_model]``.

    One forward pass per trace covers all its cuts (the model is causal, so the activation at a
    cut does not depend on the tokens after it). Rows are trace-major: trace 0's cuts 0..K, ...
    """
    hf_model, tokenizer = _model_and_tokenizer(model, tokenizer)
    chunks: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    for start in range(0, len(traces), batch_size):
        batch = traces[start : start + batch_size]
        ids, mask = _pad([_full_ids(tokenizer, t) for t in batch], tokenizer.pad_token_id)
        acts = resid_post(hf_model, ids, mask, layers)
        positions = [[n - 1 for _, n in cut_points(tokenizer, t, n_cuts)] for t in batch]
        rows = torch.tensor([i for i, p in enumerate(positions) for _ in p])
        cols = torch.tensor([c for p in positions for c in p])
        for layer in layers:
            chunks[layer].append(acts[layer][rows, cols].cpu())
    return {layer: torch.cat(v) for layer, v in chunks.items()}
