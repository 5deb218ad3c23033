"""Activation shifts: in which layers the post-trained model parts from its base (BRIEF.md §3).

On the same tokens, per layer ℓ of the residual stream (``blocks.{ℓ}.hook_resid_post``):

* cosine(h_base, h_post) and the relative norm ‖h_post − h_base‖ / ‖h_base‖, as running means
  and histograms (optionally split into prompt and completion tokens);
* the logit lens of each model (its own final norm and unembedding applied to h at ℓ) and the
  KL between the two models' logit-lens distributions;
* patching: the base is run with its residual stream at ℓ replaced by the post model's.
  ``patch_recovered`` = 1 − Σ KL(post‖patched) / Σ KL(post‖base), sums over positions — the
  share of the output divergence that layer ℓ's residual carries (ours: a KL-weighted average
  of the per-position recovery, which stays defined where a position's KL is ~0).

Everything is accumulated batch by batch; memory stays flat with the corpus size.

Example:
    >>> result = activation_shifts(pair, seqs)  # doctest: +SKIP
    >>> result.to_frame()  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from postlens.backends.arch import layout_for
from postlens.batch import TokenBatch
from postlens.diffs.divergence import kl_div
from postlens.diffs.forks import Sequence, _batch
from postlens.hooks import resid_post
from postlens.pair import ModelPair

COS_BINS = np.linspace(-1.0, 1.0, 41)
REL_BINS = np.linspace(0.0, 2.0, 41)


@dataclass(frozen=True)
class ActivationConfig:
    """Settings of an activation-shift run.

    Attributes:
        batch_size: sequences per forward pass.
        patching: run the per-layer patching (one extra base pass per layer and batch).
        by_position_type: also report prompt and completion tokens separately.
    """

    batch_size: int = 16
    patching: bool = True
    by_position_type: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be positive")


@dataclass
class _Acc:
    """Running sums of one layer for one position type."""

    n: int = 0
    cos: float = 0.0
    rel: float = 0.0
    cos_hist: np.ndarray = field(
        default_factory=lambda: np.zeros(len(COS_BINS) - 1, dtype=np.int64)
    )
    rel_hist: np.ndarray = field(
        default_factory=lambda: np.zeros(len(REL_BINS) - 1, dtype=np.int64)
    )

    def add(self, cos: np.ndarray, rel: np.ndarray) -> None:
        self.n += cos.size
        self.cos += float(cos.sum())
        self.rel += float(rel.sum())
        self.cos_hist += np.histogram(np.clip(cos, -1, 1), COS_BINS)[0]
        self.rel_hist += np.histogram(np.clip(rel, 0, 2), REL_BINS)[0]


def _lens(pair: ModelPair, which: str) -> Any:
    """The logit lens of one model: its own final norm then its unembedding."""
    model = pair[which].hf_model  # type: ignore[index]
    norm = model.get_submodule(layout_for(model.config.model_type).final_norm)
    unembed = model.get_output_embeddings()
    return lambda h: torch.log_softmax(unembed(norm(h)).float(), -1)


@dataclass
class LayerShift:
    """One layer's figures."""

    layer: int
    cosine_mean: float
    rel_norm_mean: float
    logit_lens_kl: float
    patch_recovered: float | None
    by_type: dict[str, dict[str, float]] = field(default_factory=dict)
    cosine_hist: list[int] = field(default_factory=list)
    rel_norm_hist: list[int] = field(default_factory=list)


@dataclass
class ActivationResult:
    """Per-layer activation shifts of a pair.

    Attributes:
        layers: one entry per block.
        output_kl: mean KL(post‖base) of the output distributions over the positions used.
        n_positions: positions accumulated.
    """

    base: str
    post: str
    layers: list[LayerShift]
    output_kl: float
    n_positions: int

    def parting_layer(self, threshold: float = 0.5) -> int | None:
        """The first layer whose patching recovers at least `threshold` of the output KL."""
        for layer in self.layers:
            if layer.patch_recovered is not None and layer.patch_recovered >= threshold:
                return layer.layer
        return None

    def to_frame(self) -> Any:
        import pandas as pd

        cols = ("layer", "cosine_mean", "rel_norm_mean", "logit_lens_kl", "patch_recovered")
        return pd.DataFrame([{c: getattr(x, c) for c in cols} for x in self.layers])

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "post": self.post,
            "output_kl": self.output_kl,
            "n_positions": self.n_positions,
            "parting_layer": self.parting_layer(),
            "cosine_bins": COS_BINS.tolist(),
            "rel_norm_bins": REL_BINS.tolist(),
            "layers": [vars(x) for x in self.layers],
        }

    def _repr_html_(self) -> str:
        from postlens.viz.html import esc, table

        head = f"<b>activation shifts {esc(self.base)} → {esc(self.post)}</b>: output KL {self.output_kl:.4g}"
        return f"<div>{head}{table(self.to_frame().to_dict('records'))}</div>"


@torch.no_grad()
def activation_shifts(
    pair: ModelPair,
    seqs: list[Sequence],
    config: ActivationConfig | None = None,
    progress: bool = True,
) -> ActivationResult:
    """Accumulate per-layer shifts, logit-lens KL and patching over `seqs` (see module doc)."""
    cfg = config or ActivationConfig()
    n_layers = pair.n_layers
    hooks = [resid_post(i) for i in range(n_layers)]
    accs = {t: [_Acc() for _ in range(n_layers)] for t in ("all", "prompt", "completion")}
    lens = {w: _lens(pair, w) for w in ("base", "post")}
    lens_kl = np.zeros(n_layers)
    patched_kl = np.zeros(n_layers)
    out_kl, n_pos = 0.0, 0
    for start in tqdm(
        range(0, len(seqs), cfg.batch_size), desc="activation shifts", disable=not progress
    ):
        chunk = seqs[start : start + cfg.batch_size]
        ids, mask, scored = _batch(pair, chunk)
        batch = TokenBatch(ids, mask, [])
        real = mask.bool()
        run_b, run_p = pair.run("base", batch, hooks), pair.run("post", batch, hooks)
        logp_b = torch.log_softmax(run_b.logits.float(), -1)
        logp_p = torch.log_softmax(run_p.logits.float(), -1)
        out_kl += float(kl_div(logp_p[real], logp_b[real]).sum())
        n_pos += int(real.sum())
        completion = scored.roll(1, dims=1) & real  # tokens of the completion itself
        for i, name in enumerate(hooks):
            hb, hp = run_b[name].float(), run_p[name].float()
            cos = torch.nn.functional.cosine_similarity(hb, hp, dim=-1)
            rel = (hp - hb).norm(dim=-1) / hb.norm(dim=-1).clamp_min(1e-12)
            for kind, sel in (
                ("all", real),
                ("prompt", real & ~completion),
                ("completion", completion),
            ):
                accs[kind][i].add(cos[sel].numpy(), rel[sel].numpy())
            lens_kl[i] += float(kl_div(lens["post"](hp)[real], lens["base"](hb)[real]).sum())
            if cfg.patching:
                patched = pair.run("base", batch, interventions={name: run_p[name]}).logits
                patched_kl[i] += float(
                    kl_div(logp_p[real], torch.log_softmax(patched.float(), -1)[real]).sum()
                )
    layers = [
        _layer(i, accs, lens_kl[i] / max(1, n_pos), patched_kl[i], out_kl, cfg)
        for i in range(n_layers)
    ]
    return ActivationResult(
        pair.base_spec.spec, pair.post_spec.spec, layers, out_kl / max(1, n_pos), n_pos
    )


def _layer(
    i: int,
    accs: dict[str, list[_Acc]],
    lens_kl: float,
    patched: float,
    out: float,
    cfg: ActivationConfig,
) -> LayerShift:
    a = accs["all"][i]
    by_type = {}
    if cfg.by_position_type:
        by_type = {
            kind: {"n": acc.n, "cosine_mean": acc.cos / acc.n, "rel_norm_mean": acc.rel / acc.n}
            for kind in ("prompt", "completion")
            if (acc := accs[kind][i]).n
        }
    recovered = (1.0 - patched / out) if cfg.patching and out > 0 else None
    return LayerShift(
        layer=i,
        cosine_mean=a.cos / max(1, a.n),
        rel_norm_mean=a.rel / max(1, a.n),
        logit_lens_kl=lens_kl,
        patch_recovered=recovered,
        by_type=by_type,
        cosine_hist=a.cos_hist.tolist(),
        rel_norm_hist=a.rel_hist.tolist(),
    )
