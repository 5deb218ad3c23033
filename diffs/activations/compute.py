"""Activation shifts: in which layers the post-trained model parts from its base (model diffing).

On the same tokens, per layer ℓ of the residual stream (``blocks.{ℓ}.hook_resid_post``):

* cosine(h_base, h_post) and the relative norm ‖h_post − h_base‖ / ‖h_base‖, as running means
  and histograms (optionally split into prompt and completion tokens);
* the logit lens of each model (its own final norm and unembedding applied to h at ℓ) and
  ``logit_lens_kl`` = the mean over positions of KL(post lens ‖ base lens); at the last layer
  this is the output KL(post‖base). With a large vocabulary the lens is the costly part (one
  unembedding per layer, position and model), so by default it is taken at
  ``ActivationConfig.lens_positions`` = 4 positions per sequence, drawn uniformly without
  replacement among its tokens (seeded by ``ActivationConfig.seed``), at every layer
  (``lens_layers``: which); `ActivationResult.lens_positions` says how many positions it
  averaged, and layers left out have ``logit_lens_kl`` ``None``. Every KL is reduced a block of
  rows at a time, so no positions × vocabulary tensor is built for it;
* patching: the base is run with its residual stream at ℓ replaced by the post model's (at
  every position of the sequence). ``patch_recovered`` = 1 − Σ_t KL(post‖patched)_t /
  Σ_t KL(post‖base)_t — the share of the output divergence that layer ℓ's residual carries.
  Ours: summing before dividing makes it the KL-weighted average over positions of the
  per-position recovery 1 − KL(post‖patched)_t / KL(post‖base)_t, which stays defined where a
  position's KL is ~0. It is 0 where patching changes nothing, 1 where it reproduces the post
  model; it is at most 1 and negative when the patch moves the base further away. ``None`` when
  the output KL is exactly 0 (identical models): there is nothing to recover. By default
  (``patching="attribution"``) the numerator is its first-order estimate from one forward and
  one backward of the base for all layers at once (`postlens.diffs.activations.attribution`: recovered_ℓ ≈
  −Σ⟨∂M/∂h_ℓ, h_post,ℓ − h_base,ℓ⟩ / M with M = Σ_t KL(post‖base)_t), which can leave [.., 1];
  ``patching="exact"`` runs one patched base forward per layer and batch; ``"none"`` skips it.
  `ActivationResult.patching` records which.

Positions are every non-padding token (prompt and completion); cosine and relative norm are
also reported per position type when ``by_position_type`` is set.

Everything is accumulated batch by batch, in float32 whatever the models' dtype; memory stays
flat with the corpus size. Where the two models' ids differ (`postlens.models.compat`), every KL is
taken over the shared ids (both distributions renormalised there) and a sequence is used up to
its first id that is not shared (`ActivationSummary.n_excluded` counts the positions cut).

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", rl="organism:rl")
    >>> seqs = fam.sample(["Q: 12 + 34 = ?\\n"], pl.SampleConfig(n=2, max_new_tokens=16))
    >>> result = activation_shifts(fam["rl"], seqs["rl"], progress=False)
    >>> list(result.to_frame().columns)[:3], result.summary().n_layers, result.patching
    (['layer', 'cosine_mean', 'rel_norm_mean'], 4, 'attribution')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from postlens.backends.arch import logit_lens
from postlens.data.batch import TokenBatch
from postlens.data.sequences import Sequence, keep_shared, pad_batch, shared_logits
from postlens.diffs.activations.attribution import (
    ALPHAS,
    base_pass,
    exact_patched_kl,
    kl_curve,
    recovered_estimate,
)
from postlens.diffs.activations.result import (  # noqa: F401  (re-exported)
    COS_BINS,
    REL_BINS,
    ActivationResult,
    ActivationSummary,
    LayerShift,
)
from postlens.diffs.divergence import kl_from_logits, worth_compiling
from postlens.diffs.forks.compute import NonFiniteError
from postlens.errors import ConfigError
from postlens.hooks import resid_post
from postlens.pair import ModelPair
from postlens.progress import show_progress
from postlens.results.family import ByChild
from postlens.sampling.generation import SampleConfig

PATCHING = ("attribution", "exact", "none")
#: Logits per logit-lens unembedding product (64M: 128 MB in bfloat16, per model).
LENS_ENTRIES = 1 << 26


@dataclass(frozen=True)
class ActivationConfig:
    """Settings of an activation-shift run.

    Attributes:
        batch_size: sequences per forward pass.
        patching: ``"attribution"`` (default: the linear estimate of patching every layer, one
            base forward and one backward per batch), ``"exact"`` (one patched base forward
            per layer and batch) or ``"none"``. ``True`` / ``False`` mean ``"exact"`` /
            ``"none"`` (their meaning before attribution patching existed).
        lens_positions: logit-lens positions per sequence, drawn uniformly among its tokens
            (0 or ``None``: every position; the lens costs one unembedding per layer, position
            and model).
        lens_layers: the layers whose logit lens is computed (``None``: all).
        grad_batch_size: sequences per forward-and-backward of attribution patching (the
            backward keeps every layer's activations of the sequences in flight).
        by_position_type: also report prompt and completion tokens separately.
        seed: seed of the lens positions' draw.
        compile: reduce over the vocabulary (output and lens KL, attribution's gradient and
            curve) with fused `torch.compile` kernels. ``None`` (default) decides by size: on
            when the corpus's tokens × vocabulary reaches `divergence.COMPILE_ABOVE`, where
            the one-off compilation (seconds) is repaid; eager on failure.
        sample: how completions are sampled when the inputs are prompts.

    Example:
        >>> ActivationConfig(patching=True).patching, ActivationConfig().lens_positions
        ('exact', 4)
    """

    batch_size: int = 8
    patching: str = "attribution"
    lens_positions: int | None = 4
    lens_layers: tuple[int, ...] | None = None
    grad_batch_size: int = 4
    by_position_type: bool = True
    seed: int = 0
    compile: bool | None = None
    sample: SampleConfig = field(default_factory=SampleConfig)

    def __post_init__(self) -> None:
        if isinstance(self.patching, bool):
            object.__setattr__(self, "patching", "exact" if self.patching else "none")
        if self.patching not in PATCHING:
            raise ConfigError(
                f"patching must be one of {', '.join(PATCHING)}, got {self.patching!r}"
            )
        if self.batch_size < 1 or self.grad_batch_size < 1:
            raise ConfigError(
                f"batch_size and grad_batch_size must be positive, got {self.batch_size}, "
                f"{self.grad_batch_size}"
            )
        if self.lens_positions == 0:
            object.__setattr__(self, "lens_positions", None)
        if self.lens_positions is not None and self.lens_positions < 1:
            raise ConfigError(f"lens_positions must be positive or None, got {self.lens_positions}")
        if self.lens_layers is not None:
            object.__setattr__(self, "lens_layers", tuple(int(x) for x in self.lens_layers))


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
    """The logit lens of one model (`logit_lens`: its final norm, unembedding and soft-cap; logits over the
    shared ids, in the model's dtype: the KL reduces them in float32). The residual is fed
    back in the model's own dtype."""
    lens = logit_lens(pair[which].hf_model)  # type: ignore[index]
    return lambda h: _shared(pair, lens(h))


def _shared(pair: ModelPair, logits: Tensor) -> Tensor:
    return shared_logits(pair, [logits])[0]


@dataclass
class _Totals:
    """Running sums over the corpus: per-layer accumulators and KL sums (nats)."""

    accs: dict[str, list[_Acc]]
    lens_kl: np.ndarray
    patched_kl: np.ndarray
    out_kl: float = 0.0
    n_pos: int = 0
    n_lens: int = 0
    jeffreys: float = 0.0
    curve: np.ndarray = field(default_factory=lambda: np.zeros(len(ALPHAS)))


@torch.no_grad()
def activation_shifts(
    pair: ModelPair,
    seqs: list[Sequence],
    config: ActivationConfig | None = None,
    progress: bool | None = None,
) -> ActivationResult:
    """Accumulate per-layer shifts, logit-lens KL and patching over `seqs` (see module doc).

    The logit lens is averaged over ``config.lens_positions`` sampled positions per sequence
    (default 4; ``None``: all) at ``config.lens_layers`` (default all), and ``patch_recovered``
    is attribution patching's estimate unless ``config.patching="exact"``; the result says
    which (`ActivationResult.lens_positions`, `ActivationResult.patching`).
    """
    cfg = config or ActivationConfig()
    seqs, excluded = keep_shared(pair, seqs)
    n_layers = pair.n_layers
    lens_layers = _lens_layers(cfg, n_layers)
    if cfg.patching == "attribution" and getattr(pair.base, "remote", False):
        raise ConfigError("attribution patching needs local gradients; use patching='exact'")
    totals = _Totals(
        {t: [_Acc() for _ in range(n_layers)] for t in ("all", "prompt", "completion")},
        np.zeros(n_layers),
        np.zeros(n_layers),
    )
    lens = {w: _lens(pair, w) for w in ("base", "post")}
    lens["vocab"] = pair.base.hf_model.config.vocab_size
    lens["layers"] = lens_layers
    lens["compiled"] = cfg.compile
    if cfg.compile is None:
        tokens = sum(len(s.prompt_ids) + len(s.completion_ids) for s in seqs)
        lens["compiled"] = worth_compiling(tokens * lens["vocab"])
    for index, start in enumerate(
        tqdm(
            range(0, len(seqs), cfg.batch_size),
            desc="activation shifts",
            disable=not show_progress(progress),
        )
    ):
        chunk = seqs[start : start + cfg.batch_size]
        _add_batch(pair, chunk, cfg, lens, totals, index)
        if not math.isfinite(totals.out_kl):  # a NaN/inf logit poisons every later figure
            raise NonFiniteError(
                f"the output KL is not finite in the batch of sequences {start}–"
                f"{start + len(chunk) - 1}: check the models' weights for NaN/inf "
                "(postlens weights) or compute in float32 (--dtype float32)"
            )
    out_kl, n_pos = totals.out_kl, totals.n_pos
    layers = [_layer(i, totals, i in lens_layers, out_kl, cfg) for i in range(n_layers)]
    return ActivationResult(
        pair.base_spec.spec, pair.post_spec.spec, layers, out_kl / max(1, n_pos), n_pos,
        excluded, cfg.patching, totals.n_lens,
    )  # fmt: skip


def _lens_layers(cfg: ActivationConfig, n_layers: int) -> set[int]:
    if cfg.lens_layers is None:
        return set(range(n_layers))
    bad = [x for x in cfg.lens_layers if not 0 <= x < n_layers]
    if bad:
        raise ConfigError(f"lens_layers {bad} out of range: the models have {n_layers} layers")
    return set(cfg.lens_layers)


def _lens_rows(mask: Tensor, k: int | None, seed: int, index: int) -> Tensor:
    """Which real positions the lens reads: `k` per sequence drawn without replacement."""
    real = mask.bool()
    if k is None:
        return real
    g = torch.Generator().manual_seed(seed * 1_000_003 + index)
    score = torch.rand(real.shape, generator=g).masked_fill(~real, -1.0)
    top = score.topk(min(k, real.shape[1]), dim=1).indices
    chosen = torch.zeros_like(real).scatter_(1, top, True)
    return chosen & real


def _add_batch(
    pair: ModelPair,
    chunk: list[Sequence],
    cfg: ActivationConfig,
    lens: dict,
    totals: _Totals,
    index: int,
) -> None:
    """Run one batch through both models (and the patched base) and add it to `totals`."""
    hooks = [resid_post(i) for i in range(pair.n_layers)]
    ids, mask, scored = pad_batch(pair, chunk)
    batch = TokenBatch(ids, mask, [])
    run_p = pair.run("post", batch, hooks)
    grad = cfg.grad_batch_size if cfg.patching == "attribution" else None
    compiled = lens["compiled"]
    base = base_pass(pair, ids, mask, run_p, grad_batch_size=grad, compiled=compiled)
    device = run_p.logits.device
    real = mask.bool().to(device)
    completion = scored.roll(1, dims=1).to(device) & real  # tokens of the completion itself
    sampled = _lens_rows(mask, cfg.lens_positions, cfg.seed, index).to(device)
    totals.out_kl += base.output_kl
    totals.n_pos += int(real.sum())
    totals.n_lens += int(sampled.sum())
    lensed: dict[int, tuple[Tensor, Tensor]] = {}
    for i, name in enumerate(hooks):
        hb, hp = base.resid[i].float(), run_p[name].float()
        cos = torch.nn.functional.cosine_similarity(hb, hp, dim=-1)
        rel = (hp - hb).norm(dim=-1) / hb.norm(dim=-1).clamp_min(1e-12)
        for kind, sel in (
            ("all", real),
            ("prompt", real & ~completion),
            ("completion", completion),
        ):
            totals.accs[kind][i].add(cos[sel].cpu().numpy(), rel[sel].cpu().numpy())
        if i in lens["layers"]:
            lensed[i] = (hp[sampled], hb[sampled])
    for i, kl in _lens_kl(lens, lensed).items():
        totals.lens_kl[i] += kl
    if cfg.patching == "exact":
        z_post = _shared(pair, run_p.logits[real])
        layers = range(pair.n_layers)
        totals.patched_kl += exact_patched_kl(pair, batch, run_p, z_post, layers, compiled)
    elif cfg.patching == "attribution":
        totals.patched_kl += base.attribution  # Σ⟨∂M/∂h_ℓ, Δh_ℓ⟩, the first-order term
        totals.jeffreys += base.jeffreys
        # M along base→post, at the lens's sampled positions (rows of the real positions).
        rows = sampled[real]
        z_post = _shared(pair, run_p.logits[sampled])
        totals.curve += kl_curve(z_post, base.logits[rows], compiled)


def _lens_kl(lens: dict, rows: dict[int, tuple[Tensor, Tensor]]) -> dict[int, float]:
    """Σ KL(post lens ‖ base lens) over each layer's rows (layer → (h_post, h_base)).

    The rows of every layer are unembedded together, `LENS_ENTRIES` logits per product: with
    a large vocabulary the product is bound by reading the unembedding matrix, so unembedding
    a few rows at a time would read it once per few rows.
    """
    if not rows:
        return {}
    h_post = torch.cat([h for h, _ in rows.values()])
    h_base = torch.cat([h for _, h in rows.values()])
    step = max(1, LENS_ENTRIES // lens["vocab"])
    kl = torch.cat([
        kl_from_logits(
            lens["post"](h_post[i : i + step]),
            lens["base"](h_base[i : i + step]),
            compiled=lens["compiled"],
        )
        for i in range(0, h_post.shape[0], step)
    ])  # fmt: skip
    sums = kl.view(len(rows), -1).sum(-1).tolist() if kl.numel() else [0.0] * len(rows)
    return dict(zip(rows, sums, strict=True))


def _layer(i: int, totals: _Totals, lensed: bool, out: float, cfg: ActivationConfig) -> LayerShift:
    accs = totals.accs
    a = accs["all"][i]
    by_type = {}
    if cfg.by_position_type:
        by_type = {
            kind: {"n": acc.n, "cosine_mean": acc.cos / acc.n, "rel_norm_mean": acc.rel / acc.n}
            for kind in ("prompt", "completion")
            if (acc := accs[kind][i]).n
        }
    recovered = first_order = None
    if cfg.patching == "exact" and out > 0:
        recovered = 1.0 - float(totals.patched_kl[i]) / out
    elif cfg.patching == "attribution" and out > 0:
        first_order = -float(totals.patched_kl[i]) / max(totals.jeffreys, 1e-30)
        recovered = recovered_estimate(first_order, totals.curve)
    return LayerShift(
        layer=i,
        cosine_mean=a.cos / max(1, a.n),
        rel_norm_mean=a.rel / max(1, a.n),
        logit_lens_kl=totals.lens_kl[i] / max(1, totals.n_lens) if lensed else None,
        patch_recovered=recovered,
        patch_first_order=first_order,
        by_type=by_type,
        cosine_hist=a.cos_hist.tolist(),
        rel_norm_hist=a.rel_hist.tolist(),
    )


def activations_of_family(
    family: Any, inputs: Any, config: ActivationConfig, progress: bool
) -> ByChild:
    """``fam.activations``: `activation_shifts` for every child, on its own sequences."""
    seqs = family.sequences(inputs, config.sample)
    results = {c: activation_shifts(p, seqs[c], config, progress) for c, p in family.pairs.items()}
    return ByChild("activations", results)
