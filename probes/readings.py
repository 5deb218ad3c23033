"""Residual-stream readings for probes, from a bare Hugging Face model (e.g. one being trained).

Probes run inside training loops, where the model is a plain `transformers` model, so this reads
``blocks.{i}.hook_resid_post`` with a torch forward hook on the decoder block: the same values
the backends return under that name (checked in the tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from postlens.backends.arch import decoder_blocks

if TYPE_CHECKING:
    from postlens.models.types import Model


@torch.no_grad()
def resid_post(
    hf_model: Model,
    input_ids: Int[Tensor, "batch pos"],
    attention_mask: Int[Tensor, "batch pos"],
    layers: Sequence[int],
) -> dict[int, Float[Tensor, "batch pos d_model"]]:
    """The residual stream after each block in `layers`, in eval mode (training mode restored)."""
    blocks = decoder_blocks(hf_model)
    out: dict[int, Tensor] = {}

    def capture(layer: int) -> Any:
        def hook(module: Any, args: Any, output: Any) -> None:
            out[layer] = (output[0] if isinstance(output, tuple) else output).detach().float()

        return hook

    handles = [blocks[i].register_forward_hook(capture(i)) for i in layers]
    was_training = hf_model.training
    hf_model.eval()
    try:
        device = next(hf_model.parameters()).device
        hf_model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device))
    finally:
        for h in handles:
            h.remove()
        hf_model.train(was_training)
    return out
