"""Activation shifts: in which layers the post-trained model parts from its base (model diffing).

On the same tokens, per layer ℓ of the residual stream (``blocks.{ℓ}.hook_resid_post``):

* cosine(h_base, h_post) and the relative norm ‖h_post − h_base‖ / ‖h_base‖, as running means
  and histograms (optionally split into prompt and completion tokens);
* the logit lens of each model (its own final norm and unembedding applied to h at ℓ) and
  ``logit_lens_kl`` = the mean over positions of KL(post lens ‖ base lens); at the last layer
  this is the output KL(post‖base);
* patching: the base is run with its residual stream at ℓ replaced by the post model's (at
  every position of the sequence). ``patch_recovered`` = 1 − Σ_t KL(post‖patched)_t /
  Σ_t KL(post‖base)_t — the share of the output divergence that layer ℓ's residual carries.
  Ours: summing before dividing makes it the KL-weighted average over positions of the
  per-position recovery 1 − KL(post‖patched)_t / KL(post‖base)_t, which stays defined where a
  position's KL is ~0. It is 0 where patching changes nothing, 1 where it reproduces the post
  model; it is at most 1 and negative when the patch moves the base further away. ``None`` when
  the output KL is exactly 0 (identical models): there is nothing to recover.

Positions are every non-padding token (prompt and completion); cosine and relative norm are
also reported per position type when ``by_position_type`` is set.

Everything is accumulated batch by batch, in float32 whatever the models' dtype; memory stays
flat with the corpus size. Where the two models' ids differ (`postlens.compat`), every KL is
taken over the shared ids (both distributions renormalised there) and a sequence is used up to
its first id that is not shared (`ActivationSummary.n_excluded` counts the positions cut).

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", rl="organism:rl")
    >>> seqs = fam.sample(["Q: 12 + 34 = ?\\n"], pl.SampleConfig(n=2, max_new_tokens=16))
    >>> result = activation_shifts(fam["rl"], seqs["rl"], progress=False)
    >>> list(result.to_frame().columns)[:3], result.summary().n_layers
    (['layer', 'cosine_mean', 'rel_norm_mean'], 4)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from postlens.backends.arch import layout_for
from postlens.batch import TokenBatch
from postlens.diffs.divergence import CHUNK_FLOATS, kl_from_logits
from postlens.diffs.sequences import Sequence, keep_shared, pad_batch, shared_logits
from postlens.errors import ConfigError
from postlens.hooks import resid_post
from postlens.pair import ModelPair
from postlens.progress import show_progress
from postlens.protocol import Result, summary_dict

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
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}")


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
    """The logit lens of one model: its own final norm then its unembedding (float32 logits
    over the shared ids). The residual is fed back in the model's own dtype."""
    model = pair[which].hf_model  # type: ignore[index]
    norm = model.get_submodule(layout_for(model.config.model_type).final_norm)
    unembed = model.get_output_embeddings()
    dtype = unembed.weight.dtype
    return lambda h: _shared(pair, unembed(norm(h.to(dtype))).float())


def _shared(pair: ModelPair, logits: Tensor) -> Tensor:
    return shared_logits(pair, [logits])[0]


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


@dataclass(frozen=True)
class ActivationSummary:
    """The headline figures of an activation-shift run.

    Attributes:
        n_positions: token positions accumulated.
        n_layers: blocks.
        output_kl: mean KL(post‖base) of the output distributions (nats).
        parting_layer: the first layer whose patching recovers at least half the output KL.
        last_cosine: mean cosine(h_base, h_post) after the last block.
        last_rel_norm: mean ‖h_post − h_base‖/‖h_base‖ after the last block.
        n_excluded: positions left out: ids only one model has (`postlens.compat`).
    """

    n_positions: int
    n_layers: int
    output_kl: float
    parting_layer: int | None
    last_cosine: float
    last_rel_norm: float
    n_excluded: int = 0


@dataclass
class ActivationResult(Result, kind="activations"):
    """Per-layer activation shifts of a pair.

    Attributes:
        base: base spec.
        post: post-trained spec.
        layers: one entry per block.
        output_kl: mean KL(post‖base) of the output distributions over the positions used.
        n_positions: positions accumulated.
        excluded: positions left out (ids only one model has).
    """

    base: str
    post: str
    layers: list[LayerShift]
    output_kl: float
    n_positions: int
    excluded: int = 0

    def parting_layer(self, threshold: float = 0.5) -> int | None:
        """The first layer whose patching recovers at least `threshold` of the output KL."""
        for layer in self.layers:
            if layer.patch_recovered is not None and layer.patch_recovered >= threshold:
                return layer.layer
        return None

    def summary(self) -> ActivationSummary:
        last = self.layers[-1]
        return ActivationSummary(
            self.n_positions, len(self.layers), self.output_kl, self.parting_layer(),
            last.cosine_mean, last.rel_norm_mean, self.excluded,
        )  # fmt: skip

    def to_frame(self) -> Any:
        import pandas as pd

        cols = ("layer", "cosine_mean", "rel_norm_mean", "logit_lens_kl", "patch_recovered")
        return pd.DataFrame([{c: getattr(x, c) for c in cols} for x in self.layers])

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "base": self.base,
            "post": self.post,
            "summary": summary_dict(self.summary()),
            "output_kl": self.output_kl,
            "n_positions": self.n_positions,
            "excluded": self.excluded,
            "parting_layer": self.parting_layer(),
            "cosine_bins": COS_BINS.tolist(),
            "rel_norm_bins": REL_BINS.tolist(),
            "layers": [vars(x) for x in self.layers],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ActivationResult:
        layers = [LayerShift(**x) for x in data["layers"]]
        return cls(
            data["base"], data["post"], layers, data["output_kl"], data["n_positions"],
            data.get("excluded", 0),
        )  # fmt: skip

    def plot(self) -> Any:
        return self.plot_children({self.post or "post": self})

    @classmethod
    def plot_children(cls, results: Mapping[str, Result]) -> Any:
        """Per-layer cosine, relative norm, logit-lens KL and patching recovery, per child."""
        from postlens.viz import figures

        return figures.layer_profile(results)

    def _repr_html_(self) -> str:
        from postlens.viz.html import esc, table

        head = f"<b>activation shifts {esc(self.base)} → {esc(self.post)}</b>: output KL {self.output_kl:.4g}"
        return f"<div>{head}{table(self.to_frame().to_dict('records'))}</div>"


@dataclass
class _Totals:
    """Running sums over the corpus: per-layer accumulators and KL sums (nats)."""

    accs: dict[str, list[_Acc]]
    lens_kl: np.ndarray
    patched_kl: np.ndarray
    out_kl: float = 0.0
    n_pos: int = 0


@torch.no_grad()
def activation_shifts(
    pair: ModelPair,
    seqs: list[Sequence],
    config: ActivationConfig | None = None,
    progress: bool | None = None,
) -> ActivationResult:
    """Accumulate per-layer shifts, logit-lens KL and patching over `seqs` (see module doc)."""
    cfg = config or ActivationConfig()
    seqs, excluded = keep_shared(pair, seqs)
    n_layers = pair.n_layers
    totals = _Totals(
        {t: [_Acc() for _ in range(n_layers)] for t in ("all", "prompt", "completion")},
        np.zeros(n_layers),
        np.zeros(n_layers),
    )
    lens = {w: _lens(pair, w) for w in ("base", "post")}
    lens["vocab"] = pair.base.hf_model.config.vocab_size
    for start in tqdm(
        range(0, len(seqs), cfg.batch_size),
        desc="activation shifts",
        disable=not show_progress(progress),
    ):
        _add_batch(pair, seqs[start : start + cfg.batch_size], cfg, lens, totals)
    accs, lens_kl, patched_kl = totals.accs, totals.lens_kl, totals.patched_kl
    out_kl, n_pos = totals.out_kl, totals.n_pos
    layers = [
        _layer(i, accs, lens_kl[i] / max(1, n_pos), patched_kl[i], out_kl, cfg)
        for i in range(n_layers)
    ]
    return ActivationResult(
        pair.base_spec.spec, pair.post_spec.spec, layers, out_kl / max(1, n_pos), n_pos, excluded
    )


def _add_batch(
    pair: ModelPair, chunk: list[Sequence], cfg: ActivationConfig, lens: dict, totals: _Totals
) -> None:
    """Run one batch through both models (and the patched base) and add it to `totals`."""
    hooks = [resid_post(i) for i in range(pair.n_layers)]
    ids, mask, scored = pad_batch(pair, chunk)
    batch = TokenBatch(ids, mask, [])
    run_b, run_p = pair.run("base", batch, hooks), pair.run("post", batch, hooks)
    device = run_p.logits.device
    real = mask.bool().to(device)
    completion = scored.roll(1, dims=1).to(device) & real  # tokens of the completion itself
    # Only real (non-padding) positions are reduced; KL is computed a block of rows at a time.
    z_post = _shared(pair, run_p.logits[real])
    totals.out_kl += float(kl_from_logits(z_post, _shared(pair, run_b.logits[real])).sum())
    totals.n_pos += int(real.sum())
    for i, name in enumerate(hooks):
        hb, hp = run_b[name].float(), run_p[name].float()
        cos = torch.nn.functional.cosine_similarity(hb, hp, dim=-1)
        rel = (hp - hb).norm(dim=-1) / hb.norm(dim=-1).clamp_min(1e-12)
        for kind, sel in (
            ("all", real),
            ("prompt", real & ~completion),
            ("completion", completion),
        ):
            totals.accs[kind][i].add(cos[sel].cpu().numpy(), rel[sel].cpu().numpy())
        totals.lens_kl[i] += float(_lens_kl(lens, hp[real], hb[real]).sum())
        if cfg.patching:
            patched = pair.run("base", batch, interventions={name: run_p[name]}).logits
            patched_kl = kl_from_logits(z_post, _shared(pair, patched[real]))
            totals.patched_kl[i] += float(patched_kl.sum())


def _lens_kl(lens: dict, h_post: Tensor, h_base: Tensor) -> Tensor:
    """KL(post lens ‖ base lens) per row, unembedding a block of rows at a time."""
    vocab = lens["vocab"]
    step = max(1, CHUNK_FLOATS // vocab)
    parts = [
        kl_from_logits(lens["post"](h_post[i : i + step]), lens["base"](h_base[i : i + step]))
        for i in range(0, h_post.shape[0], step)
    ]
    return torch.cat(parts) if parts else h_post.new_zeros(0)


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
