"""Broken inputs for the bad-input suite: checkpoints with a tensor dropped, added or reshaped."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

#: name → (how to break the llama fixture's state dict, text the error must contain).
BROKEN_CHECKPOINTS: dict[str, tuple[Callable[[dict], None], str]] = {
    "missing": (
        lambda sd: sd.pop("model.layers.0.mlp.up_proj.weight"),
        "1 tensor missing (model.layers.0.mlp.up_proj.weight)",
    ),
    "missing_head": (lambda sd: sd.pop("lm_head.weight"), "1 tensor missing (lm_head.weight)"),
    "unexpected": (
        lambda sd: sd.__setitem__("model.layers.0.extra.weight", torch.zeros(3)),
        "1 tensor unexpected (model.layers.0.extra.weight)",
    ),
    "wrong_shape": (
        lambda sd: sd.__setitem__("model.norm.weight", torch.ones(31)),
        "model.norm.weight is [31] in the checkpoint but [32] in the model",
    ),
    "many_missing": (
        lambda sd: [sd.pop(k) for k in sorted(sd) if ".layers.1." in k],
        "9 tensors missing (model.layers.1.input_layernorm.weight",
    ),
}


def break_checkpoint(src: Path, dst: Path, edit: Callable[[dict], None]) -> Path:
    """Copy a saved model folder and rewrite its safetensors after `edit` changed the tensors."""
    shutil.copytree(src, dst)
    state = load_file(dst / "model.safetensors")
    edit(state)
    save_file(state, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


def leftovers(folder: Path) -> list[str]:
    """Every file under `folder`, hidden temp files included (nothing half-written may stay)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
