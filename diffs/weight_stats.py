"""Per-tensor statistics of a weight update ΔW = W_post − W_base, streamed in chunks.

Each tensor is cut into flat chunks of `CHUNK` entries (in storage order). A chunk is converted
to float32 whatever its storage dtype (so bf16 against fp32 compares in fp32) and reduced to
Σ ΔW², Σ W², Σ |ΔW|, max |ΔW| and the two change counts; chunk sums are accumulated across
chunks in float64. A chunk holding NaN or Inf goes through a float64 masked path: non-finite
entries are counted per side and left out of every other figure (they count as unchanged).

Two producers give the same per-chunk sums: the C kernel `postlens._kernels` (one pass over the
bytes, bf16 converted in registers, chunks shared among threads; float32 and bfloat16 storage)
and, where it is not built or for other dtypes, a few in-place torch ops per chunk (2 MB per
operand stays in cache; float32 reductions over ≤ `CHUNK` entries, relative error ≲ 4e-7).

Example:
    >>> import torch
    >>> post = torch.tensor([0.0, 1.0, 0.0, 0.0])
    >>> (s,), _ = stream_updates(torch.zeros(4), [post], 1e-5)
    >>> s.changed_exact, float(s.sq_diff)
    (1, 1.0)
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

logger = logging.getLogger(__name__)
#: Entries per chunk: 2 MB of float32 per operand, so a chunk's working set stays in cache.
CHUNK = 1 << 19
_FLOATS = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


@dataclass
class Workspace:
    """Float32 buffers of one chunk, reused across chunks.

    Fresh 2 MB temporaries come from ``mmap`` and are page-faulted in on every chunk; reusing
    buffers makes the statistics 2-4× faster on CPU.
    """

    base: Tensor = field(default_factory=lambda: torch.empty(CHUNK))
    post: Tensor = field(default_factory=lambda: torch.empty(CHUNK))
    other: Tensor = field(default_factory=lambda: torch.empty(CHUNK))
    diff: Tensor = field(default_factory=lambda: torch.empty(CHUNK))
    scratch: Tensor = field(default_factory=lambda: torch.empty(CHUNK))


def _f32(x: Tensor, buf: Tensor) -> Tensor:
    """`x` in float32: itself when it already is (read only), else converted into `buf`."""
    return x if x.dtype == torch.float32 else buf[: x.numel()].copy_(x)


def pair_sums(b: Tensor, p: Tensor, atol: float, ws: Workspace | None = None) -> Tensor:
    """[Σ Δ², Σ W², Σ |Δ|, max |Δ|, #(Δ ≠ 0), #(|Δ| > atol)] of one chunk, in float64.

    The counts are sums of ``sign``: torch's ``count_nonzero`` and boolean sums are 5-20× slower
    on CPU than the arithmetic around them. Both counts are exact: a chunk has fewer than 2^24
    entries, and for IEEE floats |Δ| − atol > 0 exactly when |Δ| > atol.
    """
    ws, n = ws or Workspace(), b.numel()
    b32 = _f32(b, ws.base)
    d = torch.sub(_f32(p, ws.post), b32, out=ws.diff[:n])
    sq_d, sq_b = torch.dot(d, d), torch.dot(b32, b32)
    a = d.abs_()
    abs_sum, abs_max = a.sum(), a.max()
    exact = torch.sign(a, out=ws.scratch[:n]).sum()
    tol = a.sub_(atol).clamp_(min=0).sign_().sum()
    return torch.stack([sq_d, sq_b, abs_sum, abs_max, exact, tol]).double()


def cross_sums(b: Tensor, p: Tensor, o: Tensor, ws: Workspace | None = None) -> Tensor:
    """[ΔW_p · ΔW_o, ‖ΔW_p‖², ‖ΔW_o‖²] of one chunk (for the cosine of two updates)."""
    ws, n = ws or Workspace(), b.numel()
    b32 = _f32(b, ws.base)
    dp = torch.sub(_f32(p, ws.post), b32, out=ws.diff[:n])
    do = torch.sub(_f32(o, ws.other), b32, out=ws.scratch[:n])
    return torch.stack([torch.dot(dp, do), torch.dot(dp, dp), torch.dot(do, do)]).double()


_KERNEL_CODES = {torch.float32: 0, torch.bfloat16: 1}  # dtype codes of postlens/_kernels.c


@functools.cache
def _kernels() -> Any | None:
    """The compiled kernels, or ``None`` where the optional C extension was not built."""
    try:
        from postlens import _kernels
    except ImportError:
        logger.info(
            "postlens._kernels is not built (no C compiler at install time?): weight "
            "statistics use torch ops, the same figures ~3-4x slower"
        )
        return None
    return _kernels


def fused_chunk_sums(tensors: list[Tensor], atol: float = 0.0) -> Tensor | None:
    """Per-chunk sums of (base, post) [k, 6] or (base, post, other) [k, 3] from the C kernel.

    Rows are those of `pair_sums` and `cross_sums` for the chunks of `flat_chunks`. ``None``
    when the kernel is not built or a tensor is not a float32/bfloat16 CPU tensor.
    """
    kernels = _kernels()
    if kernels is None or any(
        t.dtype not in _KERNEL_CODES or t.device.type != "cpu" for t in tensors
    ):
        return None
    flat = [t.reshape(-1).contiguous() for t in tensors]  # mapped tensors: views, no copy
    n = flat[0].numel()
    if any(f.numel() != n for f in flat):
        raise ValueError(f"tensors differ in size: {[f.numel() for f in flat]}")
    out = torch.empty(-(-n // CHUNK), 6 if len(flat) == 2 else 3, dtype=torch.float64)
    kernels.chunk_sums(
        tuple(f.data_ptr() for f in flat),
        tuple(_KERNEL_CODES[f.dtype] for f in flat),
        n,
        CHUNK,
        atol,
        out.data_ptr(),
        max(1, min(torch.get_num_threads(), 64)),
    )
    return out


def _per_chunk(tensors: list[Tensor], torch_sums: Any, width: int, atol: float = 0.0) -> Tensor:
    """[k, width] float64 sums of the chunks of `tensors`: from the C kernel when it can, else
    ``torch_sums(*chunks, workspace)`` chunk by chunk."""
    fused = fused_chunk_sums(tensors, atol)
    if fused is not None:
        return fused
    ws = Workspace()
    rows = [torch_sums(*c, ws) for c in zip(*map(flat_chunks, tensors), strict=True)]
    return torch.stack(rows) if rows else torch.zeros(0, width, dtype=torch.float64)


def chunk_sums(base: Tensor, post: Tensor, atol: float) -> Tensor:
    """`pair_sums` of every chunk, [k, 6] float64."""
    return _per_chunk([base, post], lambda b, p, ws: pair_sums(b, p, atol, ws), 6, atol)


def chunk_cross_sums(base: Tensor, post: Tensor, other: Tensor) -> Tensor:
    """`cross_sums` of every chunk, [k, 3] float64."""
    return _per_chunk([base, post, other], cross_sums, 3)


def _split_finite(sums: Tensor, *tensors: Tensor) -> tuple[np.ndarray, list[tuple[Tensor, ...]]]:
    """The finite rows of the per-chunk sums of `tensors`, and the chunks of the other rows
    (to redo on a masked path). Numpy: a tensor has a few dozen rows, where torch's per-call
    overhead would cost more than the sums."""
    rows = sums.numpy()
    finite = np.isfinite(rows).all(1)
    bad = np.flatnonzero(~finite).tolist()
    if not bad:  # the usual case: no need to cut the tensors into chunks
        return rows, []
    chunks = [flat_chunks(t) for t in tensors]
    return rows[finite], [tuple(c[i] for c in chunks) for i in bad]


@dataclass
class UpdateStats:
    """Running sums over the entries of one tensor's update (float64 across chunks)."""

    numel: int = 0
    sq_diff: float = 0.0
    sq_base: float = 0.0
    abs_diff: float = 0.0
    max_abs: float = 0.0
    changed_exact: int = 0
    changed_tol: int = 0
    nan_base: int = 0
    nan_post: int = 0
    inf_base: int = 0
    inf_post: int = 0

    def add(self, sums: list[float], numel: int) -> None:
        """Fold six finite sums (over `numel` entries) in."""
        sq_d, sq_b, abs_d, max_a, exact, tol = sums
        self.numel += numel
        self.sq_diff += sq_d
        self.sq_base += sq_b
        self.abs_diff += abs_d
        self.max_abs = max(self.max_abs, max_a)
        self.changed_exact += int(exact)
        self.changed_tol += int(tol)

    def add_chunks(self, sums: Tensor, base: Tensor, post: Tensor, atol: float) -> None:
        """Fold the per-chunk sums (`chunk_sums`) of a whole tensor in; non-finite chunks of
        `base` and `post` go through the masked path."""
        good, bad = _split_finite(sums, base, post)
        if len(good):
            folded = [*good[:, :3].sum(0), good[:, 3].max(), *good[:, 4:].sum(0)]
            self.add(folded, base.numel() - sum(b.numel() for b, _ in bad))
        for b, p in bad:
            self.add_masked(b, p, atol)

    def add_masked(self, b: Tensor, p: Tensor, atol: float) -> None:
        """Fold a chunk holding NaN/Inf in: count them per side, leave them out of the rest."""
        b64, p64 = b.double(), p.double()
        self.nan_base += int(b64.isnan().sum())
        self.nan_post += int(p64.isnan().sum())
        self.inf_base += int(b64.isinf().sum())
        self.inf_post += int(p64.isinf().sum())
        finite = b64.isfinite() & p64.isfinite()
        b64, p64 = b64[finite], p64[finite]
        # Δ is taken in float32 like everywhere else, then summed in float64.
        d = (p64.float() - b64.float()).double()
        a = d.abs()
        self.numel += b.numel()
        self.sq_diff += float(d.square().sum())
        self.sq_base += float(b64.square().sum())
        self.abs_diff += float(a.sum())
        self.max_abs = max(self.max_abs, float(a.max()) if a.numel() else 0.0)
        self.changed_exact += int(torch.count_nonzero(d))
        self.changed_tol += int(torch.count_nonzero(a > atol))

    @property
    def rel_norm(self) -> float:
        """‖ΔW‖_F / ‖W_base‖_F (inf when the base tensor is all zeros but changed)."""
        if self.sq_base == 0:
            return 0.0 if self.sq_diff == 0 else math.inf
        return math.sqrt(self.sq_diff / self.sq_base)


@dataclass
class PairedUpdates:
    """Running sums for the cosine between two children's updates of the same tensor."""

    dot: float = 0.0
    sq_a: float = 0.0
    sq_b: float = 0.0

    def add_chunks(self, sums: Tensor, base: Tensor, post: Tensor, other: Tensor) -> None:
        """Fold the per-chunk sums (`chunk_cross_sums`) of a whole tensor in; entries
        non-finite in any of the three are left out."""
        good, bad = _split_finite(sums, base, post, other)
        dot, sq_a, sq_b = good.sum(0).tolist()
        for b, p, o in bad:
            finite = b.isfinite() & p.isfinite() & o.isfinite()
            d, a, c = cross_sums(b[finite], p[finite], o[finite]).tolist()
            dot, sq_a, sq_b = dot + d, sq_a + a, sq_b + c
        self.dot, self.sq_a, self.sq_b = self.dot + dot, self.sq_a + sq_a, self.sq_b + sq_b

    @property
    def cosine(self) -> float | None:
        """cos(ΔW_a, ΔW_b); ``None`` when either update is zero (the angle is undefined)."""
        if self.sq_a == 0 or self.sq_b == 0:
            return None
        return self.dot / math.sqrt(self.sq_a * self.sq_b)


def flat_chunks(t: Tensor) -> list[Tensor]:
    """Views of `t`, flattened, `CHUNK` entries at a time (non-float dtypes become float32)."""
    flat = t.reshape(-1)
    if flat.dtype not in _FLOATS:
        flat = flat.float()  # integer or boolean buffers: compared as numbers
    return list(flat.split(CHUNK)) if flat.numel() else []


def stream_updates(
    base: Float[Tensor, "..."],
    posts: list[Float[Tensor, "..."]],
    atol: float,
) -> tuple[list[UpdateStats], PairedUpdates | None]:
    """Statistics of one tensor's update in each child: one pass over base and child each.

    With two or more children, also the sums for the cosine between the first two updates
    (one more pass over the three).

    Example:
        >>> stats, _ = stream_updates(torch.ones(3), [torch.ones(3)], 0.0)
        >>> stats[0].rel_norm
        0.0
    """
    stats = [UpdateStats() for _ in posts]
    for s, post in zip(stats, posts, strict=True):
        s.add_chunks(chunk_sums(base, post, atol), base, post, atol)
    if len(posts) < 2:
        return stats, None
    paired = PairedUpdates()
    paired.add_chunks(chunk_cross_sums(base, *posts[:2]), base, *posts[:2])
    return stats, paired
