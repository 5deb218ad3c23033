"""Patching the base with the post model's residual stream: exact, or its linear approximation.

Let M(h) = Σ_t KL(p_post,t ‖ p_base,t(h)), summed over the real positions t of a batch, where
p_base(h) is the base run with its residual stream after block ℓ (``blocks.{ℓ}.hook_resid_post``)
replaced by h at every position. Unpatched, M(h_base,ℓ) is the output KL; patching block ℓ gives
M(h_post,ℓ), and ``patch_recovered`` = 1 − Σ M(h_post,ℓ) / Σ M(h_base,ℓ) (sums over batches;
`postlens.diffs.activations.compute`).

* **exact**: one patched base forward per layer and batch (`exact_patched_kl`).
* **attribution**: one base forward and one backward per batch for every layer at once
  (`base_pass`). The first-order Taylor expansion of M around the base run (attribution
  patching, Nanda 2023) is M(h_post,ℓ) ≈ M + ⟨∂M/∂h_ℓ, Δh_ℓ⟩, Δh_ℓ = h_post,ℓ − h_base,ℓ, the
  inner product summed over positions and the residual dimension. Read alone it is a poor
  estimate of the patched KL: M is a divergence that vanishes at the post model, so the linear
  term overshoots (at the output, −⟨∇M, z_post − z_base⟩ = Σ_t KL(post‖base)_t + KL(base‖post)_t,
  the Jeffreys divergence J, often several times M). So postlens reads it as a *distance along
  the base→post direction in logit space*: if patching layer ℓ moved every position's logits
  to z_base + α(z_post − z_base), the first-order term would be −αJ, hence

      α_ℓ = −Σ⟨∂M/∂h_ℓ, Δh_ℓ⟩ / Σ J        (``LayerShift.patch_first_order``)

  and ``patch_recovered`` ≈ 1 − M(α_ℓ) / M(0), where M(α) = Σ_t KL(p_post ‖ softmax(z_base +
  α(z_post − z_base)))_t is evaluated on a grid of α (`ALPHAS`) at the logit lens's sampled
  positions and interpolated (`recovered_estimate`). M(0) is the output KL and M(1) = 0, so
  α = 1 reads as full recovery; the estimate is monotone in α on [0, 1] (M is convex in α),
  so it ranks the layers as the first-order term does, and it is at most 1.

The gradient is taken by adding a zero tensor δ_ℓ at every hook point (∂M/∂δ_ℓ = ∂M/∂h_ℓ); the
gradient of M with respect to the base logits, softmax(z_base) − p_post per position, is written
a block of rows at a time instead of being differentiated through a full-vocabulary loss.

What it is good for is the ranking of the layers: `tests/diffs/activations/test_attribution.py` checks it
against exact patching on the organism (base vs rl and vs sft: the same order of the 4 layers,
Spearman 1, and the same top layer). Its values are lower than exact patching's (by up to
0.26 there: the linearised network, final norm included, attenuates a patch as large as a
whole residual's shift), so read ``patch_recovered`` under attribution as a ranking and a
lower estimate, and ask for ``patching="exact"`` for the figures themselves.

Example:
    >>> import postlens as pl
    >>> from postlens.data.batch import TokenBatch
    >>> from postlens.diffs.forks.compute import given_sequences
    >>> from postlens.data.sequences import pad_batch
    >>> from postlens.hooks import resid_post
    >>> pair = pl.ModelPair.load("organism:base", "organism:rl")
    >>> seqs = given_sequences(pair, [("Q: 12 + 34 = ?\\n", "46")])
    >>> ids, mask, _ = pad_batch(pair, seqs)
    >>> post = pair.run("post", TokenBatch(ids, mask, []), [resid_post(i) for i in range(4)])
    >>> out = base_pass(pair, ids, mask, post, grad_batch_size=1)
    >>> out.attribution.shape, bool(out.output_kl > 0)
    ((4,), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from postlens.backends.base import RunOutput
from postlens.data.batch import TokenBatch
from postlens.data.sequences import shared_logits
from postlens.diffs.divergence import CHUNK_FLOATS, kl_from_logits, kl_rows, reduce_block
from postlens.hooks import resid_post
from postlens.pair import ModelPair


@dataclass
class BasePass:
    """The base model's side of one batch.

    Attributes:
        logits: the base logits at the batch's real positions, over the shared ids (detached).
        resid: the base residual stream after each block (detached), in layer order.
        output_kl: Σ_t KL(post‖base) over the batch's real positions (nats).
        attribution: per layer, Σ⟨∂M/∂h_ℓ, h_post,ℓ − h_base,ℓ⟩ (zeros when not computed).
        jeffreys: Σ_t KL(post‖base)_t + KL(base‖post)_t (0 when attribution is not computed).
    """

    logits: Float[Tensor, "n vocab"]
    resid: list[Float[Tensor, "batch pos d_model"]]
    output_kl: float
    attribution: Float[np.ndarray, " n_layers"]
    jeffreys: float = 0.0


def _real(pair: ModelPair, run: RunOutput, mask: Tensor) -> Tensor:
    return shared_logits(pair, [run.logits[mask.bool().to(run.logits.device)]])[0]


def base_pass(
    pair: ModelPair,
    ids: Int[Tensor, "batch pos"],
    mask: Int[Tensor, "batch pos"],
    post: RunOutput,
    grad_batch_size: int | None = None,
    compiled: bool = False,
) -> BasePass:
    """Run the base on a batch; with `grad_batch_size`, also the attribution of every layer.

    Args:
        pair: the models.
        ids: the batch's right-padded ids.
        mask: its attention mask.
        post: the post model's run on the same batch, with every layer's ``hook_resid_post``.
        grad_batch_size: sequences per forward-and-backward (bounds the memory the backward
            keeps: about n_layers × tokens × a few × (d_model + d_mlp) activations); ``None``
            runs one plain forward and computes no attribution.
        compiled: reduce over the vocabulary with the fused kernels
            (`postlens.diffs.divergence.reduce_block`; same figures to float32 rounding).
    """
    hooks = [resid_post(i) for i in range(pair.n_layers)]
    if grad_batch_size is None:
        run = pair.run("base", TokenBatch(ids, mask, []), hooks)
        z_b, z_p = _real(pair, run, mask), _real(pair, post, mask)
        kl = float(kl_from_logits(z_p, z_b, compiled=compiled).sum())
        return BasePass(z_b, [run[h] for h in hooks], kl, np.zeros(len(hooks)))
    parts = [
        _grad_slice(pair, ids, mask, post, hooks, slice(r, r + grad_batch_size), compiled)
        for r in range(0, ids.shape[0], grad_batch_size)
    ]
    return BasePass(
        torch.cat([p.logits for p in parts]),
        [torch.cat([p.resid[i] for p in parts]) for i in range(len(hooks))],
        sum(p.output_kl for p in parts),
        np.sum([p.attribution for p in parts], axis=0),
        sum(p.jeffreys for p in parts),
    )


def _grad_slice(
    pair: ModelPair,
    ids: Tensor,
    mask: Tensor,
    post: RunOutput,
    hooks: list[str],
    rows: slice,
    compiled: bool,
) -> BasePass:
    """One forward and one backward of the base on `rows` of the batch."""
    backend = pair.base
    ids, mask = ids[rows], mask[rows]
    dtype = backend.hf_model.get_output_embeddings().weight.dtype
    deltas = [
        torch.zeros(*ids.shape, pair.d_model, dtype=dtype, device=backend.device).requires_grad_()
        for _ in hooks
    ]
    # x + δ keeps the graph through every layer (a fresh leaf would cut it), and ∂/∂δ = ∂/∂h.
    add = {h: (lambda x, d=d: x + d) for h, d in zip(hooks, deltas, strict=True)}
    run = backend.run_with_grad(ids, mask, hooks, interventions=add)
    real = mask.bool().to(run.logits.device)
    z_p = shared_logits(pair, [post.logits[rows][real]])[0]
    grad_out, kl, jeffreys = _kl_and_logit_grad(pair, run.logits, real, z_p, compiled)
    grads = torch.autograd.grad(run.logits, deltas, grad_outputs=grad_out)
    resid = [run[h].detach() for h in hooks]
    attribution = np.array(
        [
            float((g.float() * (post[h][rows].float() - r.float())).sum())
            for g, h, r in zip(grads, hooks, resid, strict=True)
        ]
    )
    z_b = shared_logits(pair, [run.logits.detach()[real]])[0]
    return BasePass(z_b, resid, kl, attribution, jeffreys)


@torch.no_grad()
def _kl_and_logit_grad(
    pair: ModelPair,
    logits: Float[Tensor, "batch pos vocab"],
    real: Bool[Tensor, "batch pos"],
    z_post: Float[Tensor, "n shared"],
    compiled: bool = False,
) -> tuple[Tensor, float, float]:
    """∂M/∂logits (softmax(z_base) − p_post at real positions, 0 elsewhere), M and J.

    Over the shared ids only: the masked ids have probability 0 under both renormalised
    distributions, so their gradient is 0, as it is for ids past the shared width.
    """
    grad = torch.zeros_like(logits)
    where = real.nonzero(as_tuple=True)
    step = max(1, CHUNK_FLOATS // logits.shape[-1])
    total = jeffreys = 0.0
    for i in range(0, where[0].numel(), step):
        b, t = where[0][i : i + step], where[1][i : i + step]
        z_b = shared_logits(pair, [logits.detach()[b, t]])[0]
        inputs = (z_b, z_post[i : i + step])
        diff, kl, back = reduce_block(_grad_rows, inputs, step, compiled)
        total += float(kl.sum())
        jeffreys += float(kl.sum() + back.sum())
        grad[b, t, : z_b.shape[-1]] = diff.to(grad.dtype)
    return grad, total, jeffreys


def _grad_rows(z_base: Tensor, z_post: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """softmax(z_base) − softmax(z_post), KL(post‖base) and KL(base‖post) per row."""
    lq = torch.log_softmax(z_base.float(), -1)
    lp = torch.log_softmax(z_post.float(), -1)
    p, q = lp.exp(), lq.exp()
    return q - p, (p * (lp - lq)).sum(-1), (q * (lq - lp)).sum(-1)


#: The steps α along base→post in logit space at which M(α) is evaluated (0 and 1 included).
ALPHAS = np.linspace(-0.5, 2.0, 11)


@torch.no_grad()
def kl_curve(
    z_post: Float[Tensor, "n vocab"], z_base: Float[Tensor, "n vocab"], compiled: bool = False
) -> Float[np.ndarray, " alphas"]:
    """M(α) = Σ_rows KL(p_post ‖ softmax(z_base + α(z_post − z_base))) at every α of `ALPHAS`.

    With `compiled`, all of the α are reduced by one fused kernel per block of rows.

    Example:
        >>> z = torch.randn(3, 7)
        >>> curve = kl_curve(z + torch.randn(3, 7), z)
        >>> bool(curve[2] > 0), float(curve[6])  # α = 0: the KL itself; α = 1: zero
        (True, 0.0)
    """
    step = max(1, CHUNK_FLOATS // max(1, z_post.shape[-1]))
    out = np.zeros(len(ALPHAS))
    for i in range(0, z_post.shape[0], step):
        inputs = (z_post[i : i + step], z_base[i : i + step])
        rows = reduce_block(_curve_rows, inputs, step, compiled)
        out += np.array([float(r.sum()) for r in rows])
    out[np.isclose(ALPHAS, 1.0)] = 0.0  # exactly the post distribution
    return out


def _curve_rows(z_post: Tensor, z_base: Tensor) -> tuple[Tensor, ...]:
    """KL(p_post ‖ softmax(z_base + α(z_post − z_base))) per row, for each α of `ALPHAS`."""
    zp, zb = z_post.float(), z_base.float()
    return tuple(kl_rows(zp, zb + alpha * (zp - zb))[0] for alpha in _ALPHA_FLOATS)


_ALPHA_FLOATS = tuple(float(a) for a in ALPHAS)  # constants, so the fused kernel compiles once


def recovered_estimate(alpha: float, curve: Float[np.ndarray, " alphas"]) -> float:
    """Attribution's ``patch_recovered``: 1 − M(α)/M(0), M interpolated on `ALPHAS`.

    α beyond the grid is clamped to it; a curve with M(0) = 0 falls back to the quadratic
    M(α) ∝ (1 − α)².

    Example:
        >>> curve = (1 - ALPHAS) ** 2
        >>> recovered_estimate(0.0, curve), recovered_estimate(0.5, curve), recovered_estimate(1.0, curve)
        (0.0, 0.75, 1.0)
    """
    m0 = float(np.interp(0.0, ALPHAS, curve))
    if m0 <= 0:
        return 1.0 - (1.0 - alpha) ** 2
    return 1.0 - float(np.interp(alpha, ALPHAS, curve)) / m0


@torch.no_grad()
def exact_patched_kl(
    pair: ModelPair,
    batch: TokenBatch,
    post: RunOutput,
    z_post: Float[Tensor, "n vocab"],
    layers: range | list[int],
    compiled: bool = False,
) -> Float[np.ndarray, " n_layers"]:
    """Σ_t KL(post‖patched)_t of the base patched at each layer in turn (one forward each)."""
    out = np.zeros(len(layers))
    for k, layer in enumerate(layers):
        name = resid_post(layer)
        patched = pair.run("base", batch, interventions={name: post[name]})
        z_patched = _real(pair, patched, batch.attention_mask)
        out[k] = float(kl_from_logits(z_post, z_patched, compiled=compiled).sum())
    return out
