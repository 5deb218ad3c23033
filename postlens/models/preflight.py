"""Memory pre-flight: will these models fit, in this dtype, on this device, before loading them?

Loading a pair that does not fit ends with the kernel's OOM killer and no message (an 8B pair in
float32 is 64 GB). Before anything loads, postlens estimates what the models need from their
weight files (parameters × bytes per parameter of the chosen dtype, plus a working margin) and
compares it with what the device has free; if it cannot fit, one line says how much is needed
and what would fit.

The estimate is ours: parameters are counted from the safetensors headers (no tensor is read);
the margin (`MARGIN`) covers one batch of activations and the allocator's slack. Hub ids (no
local file to count) and ``device_map="auto"`` (accelerate offloads what does not fit) are not
checked.

Example:
    >>> from postlens.models.specs import resolve_spec
    >>> need = needed_bytes([resolve_spec("organism:base")], "float32")
    >>> 0 < need < 2**30
    True
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from postlens.errors import PostlensError

#: Extra memory the analyses need beyond the weights: a batch of activations and slack.
MARGIN = 512 * 2**20
BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


class InsufficientMemoryError(PostlensError):
    """The models cannot fit in the memory of the chosen device."""


def _n_params(spec: Any) -> int:
    if spec.kind == "gguf":  # dequantized on loading: every entry becomes one of `dtype`
        from postlens.models.gguf import gguf_info

        return gguf_info(spec.gguf_path).n_params
    from postlens.models.safetensors_header import read_header

    path = spec.path

    total = 0
    for file in sorted(path.glob("*.safetensors")):
        for info in read_header(file).values():
            n = 1
            for d in info.shape:
                n *= d
            total += n
    if total == 0:  # a .bin checkpoint: its size on disk is about its parameters in storage dtype
        total = sum(f.stat().st_size for f in path.glob("*.bin")) // 4
    return total


def needed_bytes(specs: Sequence[Any], dtype: str | None) -> int:
    """Bytes the models' weights take in `dtype` (float32 when ``None``), plus `MARGIN`.

    A LoRA adapter (kind ``"adapter"``) is loaded as a full copy of its base with the update
    merged in, so it counts as the base (the first full model in `specs`) plus its own tensors.
    """
    per = BYTES[dtype or "float32"]
    full = [s for s in specs if s.path is not None and s.kind != "adapter"]
    base = _n_params(full[0]) if full else 0
    total = sum(_n_params(s) + (base if s.kind == "adapter" else 0)
                for s in specs if s.path is not None)  # fmt: skip
    return total * per + MARGIN


def available_bytes(device: str | None) -> int | None:
    """Free memory of `device` (CPU: MemAvailable; CUDA: free device memory); ``None`` if unknown."""
    if device is None or device == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        pages = getattr(os, "sysconf", lambda _: -1)
        try:
            return int(pages("SC_AVPHYS_PAGES")) * int(pages("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            return None
    if device.startswith("cuda"):
        import torch

        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        return int(torch.cuda.mem_get_info(index)[0])
    return None


def check_memory(
    specs: Sequence[Any], dtype: str | None, device: str | None, device_map: Any = None
) -> None:
    """Refuse, in one line, models that cannot fit on the device (see the module docstring).

    Raises:
        InsufficientMemoryError: with the GiB needed and free, and what would fit.
    """
    if device_map is not None:
        return  # accelerate places (and offloads) what does not fit
    free = available_bytes(device)
    if free is None:
        return
    need = needed_bytes(specs, dtype)
    if need <= free:
        return
    hints = []
    if (dtype or "float32") == "float32" and needed_bytes(specs, "bfloat16") <= free:
        hints.append("--dtype bfloat16 (dtype='bfloat16') would fit")
    hints.append("--device auto (device_map='auto') lets accelerate offload to CPU and disk")
    where = device or "cpu"
    raise InsufficientMemoryError(
        f"the {len(specs)} model(s) need about {need / 2**30:.1f} GiB in {dtype or 'float32'} on "
        f"{where}, and {free / 2**30:.1f} GiB is free: " + "; ".join(hints)
    )
