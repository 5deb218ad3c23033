"""The compute dtype and the device of a load: checked before anything loads, defaults decided.

**dtype.** ``float32``, ``bfloat16`` or ``float16``. Left unset, a pair loads in the checkpoints'
own storage dtype when that is 16-bit (a bf16 checkpoint takes half the memory of its float32
copy, and its float32 copy holds no more information), else float32. The storage dtype is the
``torch_dtype`` (or ``dtype``) of ``config.json``, else the floating dtype of the safetensors
headers; the models of one load share one dtype, so the 16-bit default applies only when every
model whose dtype is known stores the same 16-bit dtype. A LoRA adapter's own dtype does not
count: its update is merged into its base's weights, which keep the base's dtype. Statistics are accumulated in float32
whatever the compute dtype (`postlens.diffs.divergence` casts before every reduction).

**device.** ``cpu``, ``cuda``, ``cuda:N``, ``mps``, or ``auto`` (accelerate's
``device_map="auto"``: layers placed on the GPUs there are, then CPU and disk).

Example:
    >>> from postlens.models.specs import resolve_spec
    >>> check_dtype("bfloat16")
    'bfloat16'
    >>> device_and_map("auto"), device_and_map("cpu")
    ((None, 'auto'), ('cpu', None))
    >>> storage_dtype(resolve_spec("organism:base"))
    'float32'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from postlens.errors import ConfigError
from postlens.models.specs import ResolvedSpec

DTYPES = ("float32", "bfloat16", "float16")
_SIXTEEN = ("bfloat16", "float16")
_HEADER_NAMES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F64": "float64"}


def check_dtype(dtype: str | None) -> str | None:
    """`dtype` itself when it is one postlens computes in, before anything loads.

    Raises:
        ConfigError: e.g. ``float13``, in one line with the choices.
    """
    if dtype is not None and dtype not in DTYPES:
        raise ConfigError(f"dtype must be float32, bfloat16 or float16, got {dtype!r}")
    return dtype


def storage_dtype(spec: ResolvedSpec) -> str | None:
    """The dtype a checkpoint is stored in (``config.json``, else its safetensors), if known."""
    path = spec.path
    if path is None:
        return None
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    stated = config.get("torch_dtype") or config.get("dtype")
    if isinstance(stated, str) and stated != "auto":
        return stated.removeprefix("torch.")
    return _header_dtype(path)


def _header_dtype(path: Any) -> str | None:
    """The floating dtype of the first safetensors file's tensors (headers only)."""
    import struct

    files = sorted(path.glob("*.safetensors"))
    if not files:
        return None
    try:
        with files[0].open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(min(n, 100 * 2**20)))
    except (OSError, ValueError, struct.error):
        return None  # the checkpoint check names a broken file; the default need not
    for meta in header.values():
        if isinstance(meta, dict) and meta.get("dtype") in _HEADER_NAMES:
            return _HEADER_NAMES[meta["dtype"]]
    return None


def default_dtype(specs: Sequence[ResolvedSpec]) -> str:
    """The dtype a load uses when none is given (see the module doc).

    Example:
        >>> from postlens.models.specs import resolve_spec
        >>> default_dtype([resolve_spec("organism:base"), resolve_spec("organism:rl")])
        'float32'
    """
    full = [s for s in specs if s.kind != "adapter"]  # an adapter merges into its base's dtype
    known = {d for d in (storage_dtype(s) for s in full) if d is not None}
    if len(known) == 1 and (only := known.pop()) in _SIXTEEN:
        return only
    return "float32"


def resolve_dtype(dtype: str | None, specs: Sequence[ResolvedSpec]) -> str:
    """`dtype` checked, or the default for these checkpoints."""
    return check_dtype(dtype) or default_dtype(specs)


def device_and_map(device: str | None) -> tuple[str | None, str | None]:
    """``(device, device_map)`` of a ``--device`` value: ``auto`` is ``device_map="auto"``."""
    if device == "auto":
        return None, "auto"
    return device, None
