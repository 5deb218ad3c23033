"""Spectral view of a 2-D update ΔW: how many directions it uses, and whether they are W's own.

Definitions (ours; the RL-subnetwork papers, arXiv 2505.11711 and 2507.10616, ask for
rank(ΔW)/min(shape) and the overlap with W's principal directions without fixing the details):

* **effective rank** = numerical rank / min(shape), the numerical rank being the number of
  singular values σ_i > rtol · σ_max. The default ``rtol = max(m, n) · eps(float32)`` is the
  convention of ``torch.linalg.matrix_rank`` on a float32 matrix, i.e. "rank(ΔW)" as a user
  would compute it: every direction above float32 round-off counts.
* **entropy rank** (a softer companion) = exp(H(σ / Σσ)) / min(shape) (Roy & Vetterli, 2007):
  1 for a flat spectrum, 1/min(shape) for a rank-one update.
* **subspace overlap** = ‖U_Δᵀ U_W‖²_F / r for the top-r left singular vectors of ΔW and W_base,
  with r capped at ΔW's numerical rank: 1 means ΔW acts inside W's principal output directions,
  r / d_out (``overlap_baseline``) is what a random subspace would give.

The spectrum comes from the Gram matrix on the smaller side, built in float64 a block of rows at
a time, then ``eigvalsh``: about 2·m·n² + n³ flops instead of an SVD's larger constant, and σ
resolved down to ~1e-7 · σ_max (far below the rank threshold). The top-r subspaces come from a
randomized SVD (``torch.svd_lowrank``, seeded) above 256 columns, an exact SVD below.

Example:
    >>> import torch
    >>> d = torch.outer(torch.arange(1.0, 5.0), torch.ones(3))
    >>> round(rank_stats(torch.eye(4, 3), d, r=2).effective_rank, 4)
    0.3333
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

# Torch is imported by the functions that use it: `postlens weights` without --rank needs none.
if TYPE_CHECKING:
    from jaxtyping import Float
    from torch import Tensor

_GRAM_BLOCK = 1 << 22  # entries per float64 block of rows when building the Gram matrix
_EXACT_BELOW = 256  # min(shape) under which the subspaces come from an exact SVD


@dataclass(frozen=True)
class RankStats:
    """Spectral figures of one 2-D update (see the module docstring for the definitions).

    Attributes:
        effective_rank: numerical rank of ΔW / min(shape).
        entropy_rank: entropy effective rank of ΔW / min(shape).
        subspace_overlap: ‖U_Δᵀ U_W‖²_F / r (``None`` when ΔW = 0).
        overlap_baseline: r / d_out, the overlap of a random r-dimensional subspace.
        r: the subspace size used.
    """

    effective_rank: float
    entropy_rank: float
    subspace_overlap: float | None
    overlap_baseline: float | None
    r: int


def singular_values(m: Float[Tensor, "d_out d_in"]) -> Float[Tensor, " k"]:
    """All singular values of `m` (descending, float64) via the Gram matrix on its smaller side."""
    import torch

    tall = m if m.shape[0] >= m.shape[1] else m.T
    n = tall.shape[1]
    gram = torch.zeros(n, n, dtype=torch.float64)
    for block in tall.split(max(1, _GRAM_BLOCK // n)):
        b64 = block.double()
        gram.addmm_(b64.T, b64)
    eig = torch.linalg.eigvalsh(gram)
    return eig.clamp_min(0).sqrt().flip(0)


def _top_left(m: Tensor, r: int, seed: int) -> Tensor:
    import torch

    if min(m.shape) <= _EXACT_BELOW:
        return torch.linalg.svd(m, full_matrices=False)[0][:, :r]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torch.svd_lowrank(m, q=min(r + 10, min(m.shape)), niter=4)[0][:, :r]


def rank_stats(
    base: Float[Tensor, "d_out d_in"],
    diff: Float[Tensor, "d_out d_in"],
    r: int,
    rtol: float | None = None,
    seed: int = 0,
) -> RankStats:
    """Effective rank of ΔW and the overlap of its top-r left subspace with W_base's.

    Args:
        base: W_base (any float dtype; read in float32).
        diff: ΔW in float32, non-finite entries already zeroed.
        r: subspace size (capped at ΔW's numerical rank and at min(shape)).
        rtol: relative threshold on σ / σ_max; ``None`` = max(m, n) · eps(float32).
        seed: seed of the randomized SVD.
    """
    import torch

    k = min(diff.shape)
    s = singular_values(diff)
    if float(s[0]) == 0:
        return RankStats(0.0, 0.0, None, None, 0)
    tol = rtol if rtol is not None else max(diff.shape) * torch.finfo(torch.float32).eps
    rank = int((s > tol * s[0]).sum())
    p = s[s > 0] / s.sum()
    entropy_rank = float(torch.exp(-(p * p.log()).sum())) / k
    r = min(r, rank, k)
    u_diff, u_base = _top_left(diff, r, seed), _top_left(base.float(), r, seed)
    overlap = float((u_diff.T.double() @ u_base.double()).square().sum()) / r
    return RankStats(rank / k, entropy_rank, overlap, r / diff.shape[0], r)
