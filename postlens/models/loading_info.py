"""Refuse a checkpoint whose tensors do not match the model its config describes.

transformers fills a missing or wrong-shape tensor with fresh random values and goes on, so
every figure computed from such a model would be silently wrong; `check_loading_info` turns its
loading report into one line naming the tensors at fault.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from postlens.errors import CheckpointError

#: How many tensor names an error lists before it says how many more there are.
SHOWN_NAMES = 5
#: Unused buffers that older GPT-2-family checkpoints still store (a constant -1e4); harmless.
_LEGACY_UNEXPECTED = (".masked_bias",)


def _names(names: Iterable[str]) -> str:
    """The first few names, sorted, and how many more (one line, for error messages)."""
    names = sorted(names)
    shown = ", ".join(names[:SHOWN_NAMES])
    more = len(names) - SHOWN_NAMES
    return f"{shown} and {more} more" if more > 0 else shown


def _shape(shape: Any) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def check_loading_info(location: str, info: dict[str, Any]) -> None:
    """Refuse a checkpoint whose tensors do not match the model its config describes.

    transformers fills a missing or wrong-shape tensor with fresh random values and goes on, so
    every figure computed from such a model would be silently wrong. Tied weights (``lm_head``
    tied to the embedding) and non-persistent buffers (rotary ``inv_freq``) are not in
    transformers' ``missing_keys``, so valid checkpoints pass; neither is an extra tensor in
    transformers' own ignore lists, nor the unused ``attn.masked_bias`` of old GPT-2 files.

    Args:
        location: the folder (or hub id) the model came from, named in the error.
        info: the ``loading_info`` dict of ``from_pretrained(..., output_loading_info=True)``.

    Raises:
        CheckpointError: one line naming the folder, the tensors at fault (first few + count)
            and, for a wrong shape, both shapes.

    Example:
        >>> check_loading_info("ckpt", {"missing_keys": {"lm_head.weight"}})
        Traceback (most recent call last):
        ...
        postlens.errors.CheckpointError: ckpt: the checkpoint does not match its config.json: 1 tensor missing (lm_head.weight)
    """
    problems = []
    missing = info.get("missing_keys") or ()
    unexpected = [
        k for k in info.get("unexpected_keys") or () if not k.endswith(_LEGACY_UNEXPECTED)
    ]
    mismatched = sorted(info.get("mismatched_keys") or (), key=lambda m: m[0])
    if missing:
        problems.append(f"{_count(missing)} missing ({_names(missing)})")
    if unexpected:
        problems.append(f"{_count(unexpected)} unexpected ({_names(unexpected)})")
    if mismatched:
        shapes = [
            f"{name} is {_shape(ckpt)} in the checkpoint but {_shape(model)} in the model"
            for name, ckpt, model in mismatched[:SHOWN_NAMES]
        ]
        more = len(mismatched) - SHOWN_NAMES
        problems.append(
            f"{_count(mismatched)} of the wrong shape ({'; '.join(shapes)}"
            + (f"; and {more} more)" if more > 0 else ")")
        )
    if info.get("error_msgs"):
        problems.append(" ".join(" ".join(info["error_msgs"]).split()))
    if problems:
        raise CheckpointError(
            f"{location}: the checkpoint does not match its config.json: {'; '.join(problems)}"
        )


def _count(items: Any) -> str:
    n = len(items)
    return f"{n} tensor" if n == 1 else f"{n} tensors"


def check_finite(model: Any, where: str) -> None:
    """Refuse a loaded model holding NaN or ±inf weights, naming the tensors.

    Sampling from it ends in an error deep inside torch, and every divergence computed from it
    is NaN. ``postlens weights`` still compares such checkpoints (it streams the files and
    counts the non-finite entries).

    Raises:
        CheckpointError: naming `where` and the tensors.

    Example:
        >>> import torch
        >>> layer = torch.nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     layer.weight[0, 0] = float("nan")
        >>> check_finite(layer, "m")
        Traceback (most recent call last):
        ...
        postlens.errors.CheckpointError: m: non-finite weights in weight (1 NaN or ±inf entries); postlens weights compares such checkpoints, no other analysis can
    """
    import torch

    bad = {}
    for name, p in model.named_parameters():
        # A NaN or ±inf entry makes the sum non-finite, so one sum (a read, no temporary)
        # clears a healthy tensor; only a non-finite sum (or an overflowing one) is counted.
        if p.is_floating_point() and p.device.type != "meta" and not torch.isfinite(p.sum()):
            n = int((~torch.isfinite(p)).sum())
            if n:
                bad[name] = n
    if bad:
        raise CheckpointError(
            f"{where}: non-finite weights in {_names(bad)} ({sum(bad.values())} NaN or ±inf "
            "entries); postlens weights compares such checkpoints, no other analysis can"
        )
