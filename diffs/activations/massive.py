"""Massive-activation positions: residual-stream positions whose norm dwarfs the others.

Real LMs write a few "massive activations" (Sun et al., 2024) into the residual stream: at the
first position of every text (the attention sink, whether or not it holds a BOS token; SmolLM2's
text has none) and at some delimiters. Their norm is tens to hundreds of times the typical one
(SmolLM2-135M, layer 15: ≈24,600 at position 0 against ≈180 elsewhere), so any mean over
positions is that position's value. Statistics that average positions (the Activation Difference
Lens) leave them out by *position*, found from the norms, never by token id.

The rule is ours: a position is massive when, at some layer read, its norm exceeds `ratio` times
the median norm of that layer over every real position of the batch.

Example:
    >>> import torch
    >>> norms = torch.tensor([[[900.0, 10.0, 11.0, 9.0]]])  # 1 layer, 1 text, 4 positions
    >>> massive_positions(norms, torch.ones(1, 4, dtype=torch.bool)).tolist()
    [[True, False, False, False]]
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float
from torch import Tensor

#: A position whose norm exceeds this multiple of the layer's median norm is massive.
MASSIVE_RATIO = 10.0


def massive_positions(
    norms: Float[Tensor, "layer batch pos"],
    mask: Bool[Tensor, "batch pos"],
    ratio: float = MASSIVE_RATIO,
) -> Bool[Tensor, "batch pos"]:
    """The real positions whose norm exceeds `ratio` × the layer's median, at some layer.

    Args:
        norms: residual norms per layer, text and position.
        mask: the real (non-padding) positions.
        ratio: the multiple of the median that makes a position massive.

    Returns:
        True at the massive positions (never at padding).
    """
    out = torch.zeros_like(mask)
    for layer in norms:
        median = layer[mask].median()
        out |= layer > ratio * median
    return out & mask
