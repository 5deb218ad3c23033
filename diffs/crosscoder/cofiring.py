"""Co-firing latents: one direction that a crosscoder split over two latents.

A BatchTopK crosscoder with more active latents than the stream needs can represent a single
child-only direction u by two latents that always fire together, with child decoders that add
up to u and base decoders that cancel (d_1^base ≈ −d_2^base). Each latent alone then has a base
decoder as large as its child one, a Δ near 0.5, and neither is reported child-only although
the pair, read as one direction, is.

What is measured (ours): over the held-out tokens, the Jaccard overlap of every pair of live
latents' firing sets, |fire_a ∧ fire_b| / |fire_a ∨ fire_b|. A pair at or above
``CrosscoderConfig.cofire_jaccard`` is read as one direction: per model m, its merged decoder
D^m = f̄_a d_a^m + f̄_b d_b^m with f̄ each latent's mean activation when it fires, and the
merged Δ and class from ‖D^m‖ exactly as for a single latent. Only pairs are merged (a group
of three shows as its pairs). The pair counts need a latent × latent matrix, so a dictionary
above `MAX_TRACKED` latents is not checked (the summary then says ``None``, not 0).

Example:
    >>> import torch
    >>> f = torch.tensor([[1.0, 2.0, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 3.0]])
    >>> co = CoFiring(3)
    >>> co.update(f)
    >>> co.pairs((f > 0).sum(0), min_jaccard=0.9, min_count=1)
    [(0, 1, 1.0)]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

#: Largest dictionary whose pairs are counted (a float32 matrix of this size squared: 64 MiB).
MAX_TRACKED = 4096


class CoFiring:
    """Counts how often each pair of latents fires on the same token (see the module); each
    latent's own firing count and activation sum come from the caller, who keeps them anyway."""

    def __init__(self, n_latents: int) -> None:
        self.tracked = n_latents <= MAX_TRACKED
        size = n_latents if self.tracked else 0
        self.both = torch.zeros(size, size)

    @torch.no_grad()
    def update(self, f: Float[Tensor, "batch latent"]) -> None:
        if self.tracked:
            on = (f > 0).float()
            self.both += on.T @ on

    def pairs(
        self, fired: Float[Tensor, " latent"], min_jaccard: float, min_count: int = 5
    ) -> list[tuple[int, int, float]]:
        """(a, b, Jaccard) of the pairs at or above `min_jaccard`, each latent fired (`fired`:
        tokens per latent) at least `min_count` times; strongest first."""
        if not self.tracked or not len(self.both):
            return []
        fired = fired.to(self.both.dtype)
        union = fired[:, None] + fired[None, :] - self.both
        jac = torch.where(union > 0, self.both / union.clamp_min(1), torch.zeros(()))
        live = fired >= min_count
        keep = torch.triu(jac >= min_jaccard, diagonal=1) & live[:, None] & live[None, :]
        found = [(int(a), int(b), round(float(jac[a, b]), 6)) for a, b in keep.nonzero().tolist()]
        return sorted(found, key=lambda p: -p[2])


def merged_rows(
    co: CoFiring, fired: Tensor, sum_f: Tensor, w_dec: Float[Tensor, "latent model d_model"],
    models: list[str], classify: Any, min_jaccard: float,
) -> list[dict[str, Any]]:  # fmt: skip
    """One row per co-firing pair: the latents, their Jaccard, and per child the merged
    direction's Δ and class (`classify`: Δ → class names). `fired` and `sum_f`: each latent's
    firing count and activation sum over the same tokens."""
    pairs = co.pairs(fired, min_jaccard)
    if not pairs:
        return []
    mean = (sum_f.double() / fired.double().clamp_min(1)).float()  # mean activation when firing
    a = torch.tensor([p[0] for p in pairs])
    b = torch.tensor([p[1] for p in pairs])
    merged = mean[a, None, None] * w_dec[a] + mean[b, None, None] * w_dec[b]  # [pair, model, d]
    norms = merged.norm(dim=-1)
    rows = [{"latents": [int(x), int(y)], "jaccard": j} for x, y, j in pairs]
    for i, child in enumerate(models[1:], start=1):
        hi = torch.maximum(norms[:, i], norms[:, 0]).clamp_min(1e-12)
        delta = (0.5 * ((norms[:, i] - norms[:, 0]) / hi + 1)).numpy()
        classes = classify(np.asarray(delta))
        for row, d, c in zip(rows, delta.tolist(), classes.tolist(), strict=True):
            row[f"delta_{child}"], row[f"class_{child}"] = round(d, 6), c
    return rows
