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
The kernel reads torch tensors or `RawTensor` (a checkpoint's stored entries as numpy, from
`postlens.diffs.weights.checkpoint_io`): on the latter the whole computation runs without torch, which
is imported only where a chunk is not finite (the masked path) or the kernel is not built.

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
import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: the kernel path on `RawTensor` needs none
    from jaxtyping import Float
    from torch import Tensor

logger = logging.getLogger(__name__)
#: Entries per chunk: 2 MB of float32 per operand, so a chunk's working set stays in cache.
CHUNK = 1 << 19
#: Storage dtypes the C kernel reads (safetensors code → the kernel's dtype code, numpy dtype of
#: the raw entries: numpy has no bfloat16, so bf16 entries are their uint16 bits).
RAW_DTYPES: dict[str, tuple[int, type]] = {"F32": (0, np.float32), "BF16": (1, np.uint16)}


@dataclass(frozen=True)
class RawTensor:
    """A float32 or bfloat16 tensor as its stored entries (a numpy view), for the C kernel.

    The streaming path of `postlens.diffs.weights.compare` hands these to `stream_updates` so that the
    usual comparison (safetensors, float32/bfloat16, the kernel built) never imports torch;
    `torch()` gives the same tensor as torch sees it, for every other path.

    Attributes:
        data: the entries, flat and C-contiguous: float32, or bfloat16 as raw uint16 bits.
        code: the storage dtype, a key of `RAW_DTYPES` (``"F32"`` or ``"BF16"``).
        shape: the tensor's shape.

    Example:
        >>> t = RawTensor(np.ones(6, dtype=np.float32), "F32", (2, 3))
        >>> t.numel(), t.element_size(), tuple(t.torch().shape)
        (6, 4, (2, 3))
    """

    data: np.ndarray
    code: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.code not in RAW_DTYPES or self.data.dtype != RAW_DTYPES[self.code][1]:
            raise ValueError(f"RawTensor: {self.data.dtype} entries do not hold {self.code!r}")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def numel(self) -> int:
        return int(self.data.size)

    def element_size(self) -> int:
        return int(self.data.itemsize)

    def torch(self) -> Tensor:
        """The same entries as a torch tensor (a view: no copy), in their storage dtype."""
        import torch

        with warnings.catch_warnings():
            # Read-only on purpose: a view of the mapped file, never written.
            warnings.simplefilter("ignore", UserWarning)
            flat = torch.from_numpy(self.data)
        if self.code == "BF16":
            flat = flat.view(torch.bfloat16)
        return flat.view(self.shape)


def _as_torch(t: Tensor | RawTensor) -> Tensor:
    return t.torch() if isinstance(t, RawTensor) else t


def _empty() -> Tensor:
    import torch

    return torch.empty(CHUNK)


@dataclass
class Workspace:
    """Float32 buffers of one chunk, reused across chunks.

    Fresh 2 MB temporaries come from ``mmap`` and are page-faulted in on every chunk; reusing
    buffers makes the statistics 2-4× faster on CPU.
    """

    base: Tensor = field(default_factory=_empty)
    post: Tensor = field(default_factory=_empty)
    other: Tensor = field(default_factory=_empty)
    diff: Tensor = field(default_factory=_empty)
    scratch: Tensor = field(default_factory=_empty)


def _f32(x: Tensor, buf: Tensor) -> Tensor:
    """`x` in float32: itself when it already is (read only), else converted into `buf`."""
    import torch

    return x if x.dtype == torch.float32 else buf[: x.numel()].copy_(x)


def pair_sums(b: Tensor, p: Tensor, atol: float, ws: Workspace | None = None) -> Tensor:
    """[Σ Δ², Σ W², Σ |Δ|, max |Δ|, #(Δ ≠ 0), #(|Δ| > atol)] of one chunk, in float64.

    The counts are sums of ``sign``: torch's ``count_nonzero`` and boolean sums are 5-20× slower
    on CPU than the arithmetic around them. Both counts are exact: a chunk has fewer than 2^24
    entries, and for IEEE floats |Δ| − atol > 0 exactly when |Δ| > atol.
    """
    import torch

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
    import torch

    ws, n = ws or Workspace(), b.numel()
    b32 = _f32(b, ws.base)
    dp = torch.sub(_f32(p, ws.post), b32, out=ws.diff[:n])
    do = torch.sub(_f32(o, ws.other), b32, out=ws.scratch[:n])
    return torch.stack([torch.dot(dp, do), torch.dot(dp, dp), torch.dot(do, do)]).double()


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


def _threads() -> int:
    """Threads for the kernel: torch's intra-op setting once torch is loaded (so
    ``torch.set_num_threads`` applies), else ``OMP_NUM_THREADS`` or the CPUs this process may
    use (the kernel's figures do not depend on it: each chunk is one thread's)."""
    loaded = sys.modules.get("torch")
    if loaded is not None:
        n = loaded.get_num_threads()
    else:
        try:
            n = int(os.environ.get("OMP_NUM_THREADS", ""))
        except ValueError:
            n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
            n = n or os.cpu_count() or 1
    return max(1, min(n, 64))


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _kernel_sums(
    kernels: Any, arrays: list[np.ndarray], codes: list[int], atol: float
) -> np.ndarray:
    """The kernel's [k, 6] or [k, 3] float64 rows for flat, C-contiguous `arrays`."""
    n = arrays[0].size
    if any(a.size != n for a in arrays):
        raise ValueError(f"tensors differ in size: {[a.size for a in arrays]}")
    out = np.empty((-(-n // CHUNK), 6 if len(arrays) == 2 else 3), dtype=np.float64)
    kernels.chunk_sums(
        tuple(map(_address, arrays)), tuple(codes), n, CHUNK, atol, _address(out), _threads()
    )
    return out


def fused_chunk_sums(tensors: list[Tensor], atol: float = 0.0) -> Tensor | None:
    """Per-chunk sums of (base, post) [k, 6] or (base, post, other) [k, 3] from the C kernel.

    Rows are those of `pair_sums` and `cross_sums` for the chunks of `flat_chunks`. ``None``
    when the kernel is not built or a tensor is not a float32/bfloat16 CPU tensor.
    """
    import torch

    codes = {torch.float32: 0, torch.bfloat16: 1}  # dtype codes of postlens/_kernels.c
    kernels = _kernels()
    if kernels is None or any(t.dtype not in codes or t.device.type != "cpu" for t in tensors):
        return None
    flat = [t.reshape(-1).contiguous() for t in tensors]  # mapped tensors: views, no copy
    # The kernel reads raw bytes: numpy views of the same memory (bf16 as its uint16 bits).
    arrays = [
        (f.view(torch.int16) if f.dtype == torch.bfloat16 else f).detach().numpy() for f in flat
    ]
    out = _kernel_sums(kernels, arrays, [codes[f.dtype] for f in flat], atol)
    return torch.from_numpy(out)


def raw_chunk_sums(tensors: list[RawTensor], atol: float = 0.0) -> np.ndarray | None:
    """`fused_chunk_sums` of stored entries (`RawTensor`), as numpy: no torch involved.

    ``None`` when the kernel is not built.
    """
    kernels = _kernels()
    if kernels is None:
        return None
    codes = [RAW_DTYPES[t.code][0] for t in tensors]
    arrays = [np.ascontiguousarray(t.data).reshape(-1) for t in tensors]  # views as mapped
    return _kernel_sums(kernels, arrays, codes, atol)


def _per_chunk(tensors: list[Tensor], torch_sums: Any, width: int, atol: float = 0.0) -> Tensor:
    """[k, width] float64 sums of the chunks of `tensors`: from the C kernel when it can, else
    ``torch_sums(*chunks, workspace)`` chunk by chunk."""
    import torch

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


def _split_finite(
    sums: Tensor | np.ndarray, *tensors: Tensor | RawTensor
) -> tuple[np.ndarray, list[tuple[Tensor, ...]]]:
    """The finite rows of the per-chunk sums of `tensors`, and the chunks of the other rows
    (to redo on a masked path, in torch). Numpy: a tensor has a few dozen rows, where torch's
    per-call overhead would cost more than the sums."""
    rows = sums if isinstance(sums, np.ndarray) else sums.numpy()
    finite = np.isfinite(rows).all(1)
    bad = np.flatnonzero(~finite).tolist()
    if not bad:  # the usual case: no need to cut the tensors into chunks
        return rows, []
    chunks = [flat_chunks(_as_torch(t)) for t in tensors]
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

    def add_chunks(
        self,
        sums: Tensor | np.ndarray,
        base: Tensor | RawTensor,
        post: Tensor | RawTensor,
        atol: float,
    ) -> None:
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
        import torch

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

    def add_chunks(
        self,
        sums: Tensor | np.ndarray,
        base: Tensor | RawTensor,
        post: Tensor | RawTensor,
        other: Tensor | RawTensor,
    ) -> None:
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
    import torch

    flat = t.reshape(-1)
    if flat.dtype not in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
        flat = flat.float()  # integer or boolean buffers: compared as numbers
    return list(flat.split(CHUNK)) if flat.numel() else []


def stream_updates(
    base: Float[Tensor, "..."] | RawTensor,
    posts: list[Float[Tensor, "..."]] | list[RawTensor],
    atol: float,
) -> tuple[list[UpdateStats], PairedUpdates | None]:
    """Statistics of one tensor's update in each child: one pass over base and child each.

    With two or more children, also the sums for the cosine between the first two updates
    (one more pass over the three). Torch tensors or `RawTensor` (stored entries, summed by the
    C kernel without torch; where the kernel is not built, or some operand is a torch tensor,
    they are viewed as torch tensors: the same figures either way).

    Example:
        >>> import torch
        >>> stats, _ = stream_updates(torch.ones(3), [torch.ones(3)], 0.0)
        >>> stats[0].rel_norm
        0.0
    """
    raw = all(isinstance(t, RawTensor) for t in (base, *posts)) and _kernels() is not None
    if not raw:
        base, posts = _as_torch(base), [_as_torch(p) for p in posts]
    stats = [UpdateStats() for _ in posts]
    for s, post in zip(stats, posts, strict=True):
        # raw: both are RawTensor (checked above); else both were made torch tensors.
        sums = raw_chunk_sums([base, post], atol) if raw else chunk_sums(base, post, atol)  # type: ignore[list-item, arg-type]
        s.add_chunks(sums, base, post, atol)  # type: ignore[arg-type]
    if len(posts) < 2:
        return stats, None
    paired = PairedUpdates()
    trio = [base, *posts[:2]]
    cross = raw_chunk_sums(trio) if raw else chunk_cross_sums(*trio)
    paired.add_chunks(cross, *trio)  # type: ignore[arg-type]  # as above
    return stats, paired
