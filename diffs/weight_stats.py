"""Per-tensor statistics of a weight update ΔW = W_post − W_base, computed in chunks.

Chunks are converted to float32 whatever the storage dtype, so a bf16 checkpoint and an fp32 one
compare exactly; per-chunk sums are taken in float32 BLAS and accumulated across chunks in
Python floats (float64). NaN/Inf entries are counted and left out of every other figure. Chunking keeps peak memory at a few copies of one
chunk, not of the whole tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

CHUNK_ELEMENTS = 1 << 22  # 4M elements: 16 MB per float32 chunk


@dataclass
class UpdateStats:
    """Running sums over the entries of one tensor's update."""

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

    def add(self, base: Tensor, post: Tensor, atol: float) -> Tensor:
        """Fold one float32 chunk in; returns the chunk's Δ with non-finite entries zeroed."""
        diff = post - base
        sq_diff, sq_base = float(torch.dot(diff, diff)), float(torch.dot(base, base))
        if not (math.isfinite(sq_diff) and math.isfinite(sq_base)):
            # Rare slow path: count NaN/Inf, then leave them out of every figure.
            self._count_non_finite(base, post)
            finite = diff.isfinite()
            diff = torch.where(finite, diff, torch.zeros((), dtype=diff.dtype))
            base = torch.where(base.isfinite(), base, torch.zeros((), dtype=base.dtype))
            sq_diff, sq_base = float(torch.dot(diff, diff)), float(torch.dot(base, base))
        absd = diff.abs()
        self.numel += diff.numel()
        self.sq_diff += sq_diff
        self.sq_base += sq_base
        self.abs_diff += float(absd.sum(dtype=torch.float64))
        if absd.numel():
            self.max_abs = max(self.max_abs, float(absd.max()))
        self.changed_exact += int(torch.count_nonzero(diff))
        self.changed_tol += int(torch.count_nonzero(absd > atol))
        return diff

    def _count_non_finite(self, base: Tensor, post: Tensor) -> None:
        self.nan_base += int(base.isnan().sum())
        self.nan_post += int(post.isnan().sum())
        self.inf_base += int(base.isinf().sum())
        self.inf_post += int(post.isinf().sum())

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

    def add(self, a: Tensor, b: Tensor) -> None:
        self.dot += float((a.double() * b.double()).sum())
        self.sq_a += float(a.double().square().sum())
        self.sq_b += float(b.double().square().sum())

    @property
    def cosine(self) -> float | None:
        """cos(ΔW_a, ΔW_b); ``None`` when either update is zero (the angle is undefined)."""
        if self.sq_a == 0 or self.sq_b == 0:
            return None
        return self.dot / math.sqrt(self.sq_a * self.sq_b)


def chunks(tensor: Tensor, rows: int | None = None) -> list[Tensor]:
    """Views of a tensor, flattened, in pieces of about `CHUNK_ELEMENTS` (no copy)."""
    flat = tensor.reshape(-1)
    step = rows or CHUNK_ELEMENTS
    return [flat[i : i + step] for i in range(0, flat.numel(), step)]


@dataclass
class RankStats:
    """Spectral view of a 2-D update.

    Attributes:
        effective_rank: entropy effective rank of ΔW (Roy & Vetterli: exp of the entropy of the
            normalised singular values), divided by min(shape). 1 means a flat spectrum.
        subspace_overlap: ‖U_Δᵀ U_W‖²_F / r for the top-r left singular vectors of ΔW and W_base:
            1 means ΔW acts inside W's principal directions, r/d_out means no preference.
        r: the subspace size used.
    """

    effective_rank: float
    subspace_overlap: float
    r: int


def _top_left(m: Tensor, r: int, exact: bool) -> Tensor:
    if exact:
        return torch.linalg.svd(m, full_matrices=False)[0][:, :r]
    return torch.svd_lowrank(m, q=r + 8, niter=4)[0][:, :r]


def rank_stats(
    base: Float[Tensor, "d_out d_in"], diff: Float[Tensor, "d_out d_in"], r: int, seed: int = 0
) -> RankStats | None:
    """Effective rank of ΔW and its top-r overlap with W_base (randomized SVD); 2-D only.

    The singular values come from an exact ``svdvals`` when min(shape) ≤ 1024, and from a
    randomized SVD of rank 256 above that (the tail beyond it is then ignored); the same
    threshold picks an exact or randomized SVD for the top-r subspaces.
    """
    if diff.ndim != 2 or min(diff.shape) < 2:
        return None
    diff, base = diff.float(), base.float()
    if float(diff.abs().max()) == 0:
        return RankStats(0.0, 0.0, 0)
    small = min(diff.shape) <= 1024
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    s = torch.linalg.svdvals(diff) if small else torch.svd_lowrank(diff, q=256)[1]
    p = s / s.sum()
    p = p[p > 0]
    erank = float(torch.exp(-(p * p.log()).sum())) / min(diff.shape)
    r = min(r, min(diff.shape) - 1)
    u_diff, u_base = _top_left(diff, r, small), _top_left(base, r, small)
    overlap = float((u_diff.T @ u_base).square().sum()) / r
    return RankStats(erank, overlap, r)
