"""Per-position statistics of two next-token distributions, reduced on the device.

Everything here takes the logits of one batch ``[n, vocab]`` and returns vectors ``[n]``, so a
caller can stream a corpus batch by batch without keeping anything of size positions × vocab.
Entropies and divergences are in nats.

Speed matters here: with a large vocabulary these reductions cost as much as the forward passes
themselves. `position_stats` therefore works on blocks of rows (small enough that the temporaries
are reused by the allocator instead of being page-faulted in afresh), derives every figure from
one softmax per model (entropy, KL and JS from the same probabilities; argmax from the top-k),
stays in float32 on the vocabulary axis, and can run as one fused `torch.compile` kernel.

Example:
    >>> import torch
    >>> z = torch.randn(3, 50)
    >>> s = position_stats(z, z)
    >>> bool((s.kl == 0).all()), s.post_rank_in_base.tolist()
    (True, [1, 1, 1])
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

logger = logging.getLogger(__name__)
LN2 = math.log(2.0)
LOG2E = 1 / LN2
#: Floats per block temporary (1 MB): small enough that a block's temporaries stay in a core's
#: L2 cache (measured: 2.5x the throughput of 4 MB blocks on a 1 MB-L2 CPU), large enough that
#: the per-operation overhead is paid rarely; 5 rows of a 50k vocabulary.
CHUNK_FLOATS = 1 << 18


@dataclass
class PositionStats:
    """Statistics of one batch of positions (every field has the batch's length first)."""

    entropy_base: Float[Tensor, " n"]
    entropy_post: Float[Tensor, " n"]
    kl: Float[Tensor, " n"]
    js: Float[Tensor, " n"]
    argmax_base: Int[Tensor, " n"]
    argmax_post: Int[Tensor, " n"]
    post_rank_in_base: Int[Tensor, " n"]
    p_base_of_base: Float[Tensor, " n"]
    p_base_of_post: Float[Tensor, " n"]
    p_post_of_base: Float[Tensor, " n"]
    p_post_of_post: Float[Tensor, " n"]
    top_base_ids: Int[Tensor, "n k"]
    top_base_p: Float[Tensor, "n k"]
    top_post_ids: Int[Tensor, "n k"]
    top_post_p: Float[Tensor, "n k"]


# --- plain reference formulas (clear, one tensor op each; used where speed does not matter) ---
def entropy(logp: Float[Tensor, "n vocab"]) -> Float[Tensor, " n"]:
    """H(p) = −Σ p log p, from log-probabilities."""
    return -(logp.exp() * logp).sum(-1)


def kl_div(logp: Float[Tensor, "n vocab"], logq: Float[Tensor, "n vocab"]) -> Float[Tensor, " n"]:
    """KL(p‖q) = Σ p (log p − log q)."""
    return (logp.exp() * (logp - logq)).sum(-1)


def js_div(logp: Float[Tensor, "n vocab"], logq: Float[Tensor, "n vocab"]) -> Float[Tensor, " n"]:
    """Jensen–Shannon divergence ½KL(p‖m) + ½KL(q‖m) with m = ½(p+q); bounded by ln 2."""
    logm = torch.logaddexp(logp, logq) - LN2
    return 0.5 * (kl_div(logp, logm) + kl_div(logq, logm))


@torch.no_grad()
def kl_from_logits(
    logits_p: Float[Tensor, "n vocab"],
    logits_q: Float[Tensor, "n vocab"],
    chunk: int | None = None,
    compiled: bool = False,
) -> Float[Tensor, " n"]:
    """KL(p‖q) per row from logits, a block of rows at a time (float32 on the vocab axis).

    Args:
        logits_p: logits of p (any float dtype).
        logits_q: logits of q, same shape.
        chunk: rows reduced at a time (default `CHUNK_FLOATS` // vocab).
        compiled: use the fused `torch.compile` kernel of `kl_rows` (`reduce_block`) (about 15× faster than
            the eager formula with a large vocabulary on CPU; compiled once per process, so
            worth it above `COMPILE_ABOVE` entries in all, see `worth_compiling`). Falls back
            to eager if compilation fails.

    Example:
        >>> z = torch.randn(4, 10)
        >>> kl_from_logits(z, z).tolist()
        [0.0, 0.0, 0.0, 0.0]
    """
    chunk = chunk or max(1, CHUNK_FLOATS // max(1, logits_p.shape[-1]))
    fn = kl_rows if compiled else _kl_eager
    parts = [
        reduce_block(fn, (logits_p[i : i + chunk], logits_q[i : i + chunk]), chunk, compiled)[0]
        for i in range(0, logits_p.shape[0], chunk)
    ]
    return torch.cat(parts) if parts else logits_p.new_zeros(0, dtype=torch.float32)


def _kl_eager(zp: Tensor, zq: Tensor) -> tuple[Tensor]:
    """KL(p‖q) per row by the reference formula (one log-softmax per model)."""
    return (kl_div(torch.log_softmax(zp.float(), -1), torch.log_softmax(zq.float(), -1)),)


def kl_rows(zp: Tensor, zq: Tensor) -> tuple[Tensor]:
    """KL(p‖q) per row in a form `torch.compile` fuses into two passes over the vocabulary.

    With s = z − max z (≤ 0, so exp cannot overflow), e = exp(s) and Z = Σ e:
    KL = Σ e_p (s_p − s_q) / Z_p − (log Z_p − log Z_q); exactly 0 for identical logits.
    """
    sp = zp.float() - zp.amax(-1, keepdim=True).float()
    sq = zq.float() - zq.amax(-1, keepdim=True).float()
    ep = sp.exp()
    tp, tq = ep.sum(-1), sq.exp().sum(-1)
    return ((ep * (sp - sq)).sum(-1) / tp - (tp.log() - tq.log()),)


#: Entries (rows × vocabulary, summed over a whole run) above which a fused kernel pays for its
#: compilation: it saves ~15-30 ns per entry on CPU and costs ~4-10 s once per process.
COMPILE_ABOVE = 3e8


def worth_compiling(entries: float) -> bool:
    """Whether a run reducing `entries` rows × vocabulary entries should use the fused kernels.

    Example:
        >>> worth_compiling(1e6), worth_compiling(1e9)
        (False, True)
    """
    return entries >= COMPILE_ABOVE


_COMPILED: dict[Any, Any] = {}


def reduce_block(
    fn: Any, inputs: tuple[Tensor, ...], chunk: int, compiled: bool
) -> tuple[Tensor, ...]:
    """`fn(*inputs)` on one block of rows; with `compiled`, through its `torch.compile` kernel
    (compiled on first use, cached per process), the rows padded to `chunk` so that every block
    has one shape and it compiles once. Falls back to eager `fn` for good if compilation fails
    (no compiler, odd device)."""
    rows = inputs[0].shape[0]
    if compiled and not _COMPILED.get("broken"):
        if rows < chunk:
            inputs = tuple(torch.nn.functional.pad(t, (0, 0, 0, chunk - rows)) for t in inputs)
        try:
            if fn not in _COMPILED:
                _COMPILED[fn] = torch.compile(fn, dynamic=False)
            return tuple(t[:rows] for t in _COMPILED[fn](*inputs))
        except Exception as err:  # noqa: BLE001  (no compiler, unsupported device...: fall back)
            _COMPILED["broken"] = True
            logger.warning("torch.compile of %s failed (%s); using eager", fn.__name__, err)
            inputs = tuple(t[:rows] for t in inputs)
    return fn(*inputs)


# --- the fast path -----------------------------------------------------------------------
#: Vocabulary block for `top_tokens`: a row's top-k lies in the k blocks of largest maximum.
TOP_BLOCK = 128


def top_tokens(z: Float[Tensor, "n vocab"], k: int) -> tuple[Tensor, Tensor]:
    """Exact top-k values and ids of each row, sorted, faster than `torch.topk` on a large vocab.

    Every token of the top k lies in one of the k blocks (of `TOP_BLOCK` entries) with the
    largest maxima, so a cheap block-max reduction narrows the search to k blocks (plus the
    ragged tail) before one small `topk`. Ties may resolve to a different but equal token.
    """
    rows, vocab = z.shape
    n_blocks = vocab // TOP_BLOCK
    if n_blocks < 8 * k:
        return z.topk(k, -1)
    main = z[:, : n_blocks * TOP_BLOCK].view(rows, n_blocks, TOP_BLOCK)
    blocks = main.amax(-1).topk(k, -1).indices  # [rows, k]
    offsets = torch.arange(TOP_BLOCK, device=z.device)
    cand_ids = (blocks[..., None] * TOP_BLOCK + offsets).reshape(rows, k * TOP_BLOCK)
    tail = torch.arange(n_blocks * TOP_BLOCK, vocab, device=z.device).expand(rows, -1)
    cand_ids = torch.cat([cand_ids, tail], -1)
    best = z.gather(-1, cand_ids).topk(k, -1)
    return best.values, cand_ids.gather(-1, best.indices)


def _core(
    zb: Tensor, zp: Tensor, max_b: Tensor, max_p: Tensor, arg_b: Tensor, arg_p: Tensor
) -> tuple[Tensor, ...]:
    """Entropies, KL, JS and cross-probabilities of one block, from the logits' maxima.

    Written with unnormalised weights e = 2^s, s = (z − max z)·log2 e, and their totals Z, so
    that every sum but the JS one needs a single pass over the vocabulary (and `torch.compile`
    fuses them). Base 2 because `exp2` and `log2` run about twice as fast as `exp` and `log` on
    CPU; the figures are converted to nats at the end (one multiplication per row).
    """
    sb = torch.sub(zb, max_b).mul_(LOG2E)  # <= 0: exp2 cannot overflow
    sp = torch.sub(zp, max_p).mul_(LOG2E)
    eb, ep = sb.exp2(), sp.exp2()
    tb, tp = eb.sum(-1), ep.sum(-1)
    lb, lp = tb.log2(), tp.log2()
    # H = −Σ p log p = log Z − Σ e·s / Z (bits), both terms small for a peaked p.
    hb = lb - (eb * sb).sum(-1) / tb
    ep_sp = (ep * sp).sum(-1)
    hp = lp - ep_sp / tp
    # KL(post‖base) = Σ p_post (log p_post − log p_base), with log p = s − log Z; exactly 0
    # for identical logits.
    kl = (ep_sp - (ep * sb).sum(-1)) / tp - (lp - lb)
    p_base_of_post = eb.gather(-1, arg_p).squeeze(-1) / tb
    p_post_of_base = ep.gather(-1, arg_b).squeeze(-1) / tp
    # JS = H(m) − ½H(base) − ½H(post) with m = u/2, u = p_base + p_post, so in bits
    # H(m) = 1 − ½ Σ u log u. Clamping u keeps 0·log 0 at 0. (u overwrites eb.)
    u = eb.mul_(tb.reciprocal()[:, None]).addcmul_(ep, tp.reciprocal()[:, None])
    ulu = (u * u.clamp_min(torch.finfo(u.dtype).tiny).log2_()).sum(-1)
    js = 1 - 0.5 * (ulu + hb + hp)
    nats = (hb, hp, kl, js, lb, lp)
    hb, hp, kl, js, log_zb, log_zp = (x * LN2 for x in nats)
    return hb, hp, kl, js, p_base_of_post, p_post_of_base, log_zb, log_zp


def _rank(zb: Tensor, arg_b: Tensor, arg_p: Tensor) -> Tensor:
    """Rank of the post argmax in the base distribution, 1-based; ties count in its favour.

    Where both argmaxes are the same token the rank is 1 without a look at the vocabulary
    (nothing exceeds a maximum), so only the rows that disagree are counted: on logits as
    given (exact), as the signs of the positive parts (about twice as fast as summing a
    boolean mask).
    """
    rank = torch.ones(zb.shape[0], dtype=torch.long, device=zb.device)
    differ = (arg_b != arg_p).squeeze(-1).nonzero().squeeze(-1)
    if differ.numel():
        rows, ids = zb.index_select(0, differ), arg_p.index_select(0, differ)
        above = torch.sub(rows, rows.gather(-1, ids)).clamp_min_(0).sign_()
        rank[differ] += above.sum(-1, dtype=torch.float32).long()
    return rank


def _block_stats(zb: Tensor, zp: Tensor, top: int, chunk: int, compiled: bool) -> list[Tensor]:
    """All statistics of one block of rows, in `PositionStats` field order."""
    # One conversion to float32 up front (exact from bfloat16 / float16): mixed-dtype
    # arithmetic would convert inside every operation, ~15x slower than float32 alone on CPU.
    zb, zp = zb.float(), zp.float()
    top_vb, ids_b = top_tokens(zb, top)
    top_vp, ids_p = top_tokens(zp, top)
    args = (top_vb[:, :1], top_vp[:, :1], ids_b[:, :1], ids_p[:, :1])
    core = reduce_block(_core, (zb, zp, *args), chunk, compiled)
    hb, hp, kl, js, pb_post, pp_base, log_zb, log_zp = core
    rank = _rank(zb, args[2], args[3])
    top_pb = (top_vb - args[0] - log_zb[:, None]).exp()
    top_pp = (top_vp - args[1] - log_zp[:, None]).exp()
    return [
        hb.clamp_min(0),
        hp.clamp_min(0),
        kl.clamp_min(0),  # rounding can leave tiny negatives
        js.clamp(0, LN2),
        ids_b[:, 0],
        ids_p[:, 0],
        rank,
        top_pb[:, 0],
        pb_post,
        pp_base,
        top_pp[:, 0],
        ids_b,
        top_pb,
        ids_p,
        top_pp,
    ]


@torch.no_grad()
def position_stats(
    logits_base: Float[Tensor, "n vocab"],
    logits_post: Float[Tensor, "n vocab"],
    top: int = 5,
    chunk: int | None = None,
    compiled: bool = False,
    rows: Int[Tensor, " m"] | None = None,
) -> PositionStats:
    """Every per-position figure of fork scoring (`postlens.diffs.forks.compute`) for one batch of positions.

    Args:
        logits_base: the base model's logits at the positions (any float dtype).
        logits_post: the post model's logits at the same positions.
        top: how many top tokens (and probabilities) of each model to keep.
        chunk: rows reduced at a time, bounding the temporaries to chunk × vocab floats;
            default `CHUNK_FLOATS` // vocab.
        compiled: fuse the reductions with `torch.compile` (falls back to eager on failure).
        rows: reduce only these rows (gathered a block at a time, so the selection is never
            copied whole); default all.

    ``post_rank_in_base`` is 1-based: 1 means the post model's choice is also the base's.
    Entropy, KL and JS are clamped to their ranges ([0, ∞), [0, ln 2]) against float32
    rounding; for identical logits KL is exactly 0.
    """
    if logits_base.shape != logits_post.shape:
        raise ValueError(f"logit shapes differ: {logits_base.shape} vs {logits_post.shape}")
    top = min(top, logits_base.shape[-1])
    chunk = chunk or max(1, CHUNK_FLOATS // logits_base.shape[-1])
    if rows is None:
        rows = torch.arange(logits_base.shape[0], device=logits_base.device)
    blocks = []
    for i in range(0, rows.numel(), chunk):
        idx = rows[i : i + chunk]
        first, last = int(idx[0]), int(idx[-1])
        if last - first + 1 == idx.numel():  # consecutive rows (the common case): a view
            zb, zp = logits_base[first : last + 1], logits_post[first : last + 1]
        else:
            zb, zp = logits_base.index_select(0, idx), logits_post.index_select(0, idx)
        blocks.append(_block_stats(zb, zp, top, chunk, compiled))
    if not blocks:
        blocks = [_block_stats(logits_base[:0], logits_post[:0], top, chunk, False)]
    columns = [torch.cat(parts) for parts in zip(*blocks, strict=True)]
    return PositionStats(*columns)


def restrict_logits(
    logits: Float[Tensor, "n vocab"], width: int, masked: Tensor | None = None
) -> Float[Tensor, "n width"]:
    """Logits over the ids two models share (`postlens.models.compat`): the first `width` columns, the
    `masked` ids among them pushed to a huge negative value.

    A softmax of the result is the model's distribution renormalised over the shared ids,
    p(i) / Σ_{j shared} p(j): exactly what every statistic here then compares. The masked
    value is finite (half the dtype's lowest) so that 0 · log 0 stays 0 in `_core`. A tensor
    that needs neither cut is returned as it is (no copy).

    Example:
        >>> z = torch.tensor([[0.0, 0.0, 5.0]])
        >>> torch.softmax(restrict_logits(z, 2), -1).tolist()
        [[0.5, 0.5]]
        >>> torch.softmax(restrict_logits(z, 3, torch.tensor([2])), -1).tolist()
        [[0.5, 0.5, 0.0]]
    """
    if logits.shape[-1] != width:
        logits = logits[..., :width].contiguous()  # `top_tokens` views rows as blocks
    if masked is not None and masked.numel():
        fill = torch.finfo(logits.dtype).min / 2
        logits = logits.index_fill(-1, masked.to(logits.device), fill)
    return logits


def stats_fields() -> list[str]:
    """Names of the `PositionStats` fields, in order."""
    return [f.name for f in fields(PositionStats)]
