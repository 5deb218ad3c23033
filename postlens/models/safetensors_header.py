"""Parse and validate safetensors headers without reading tensor data.

One home for header checks, used when loading a model (`postlens.models.loading`) and when streaming a
checkpoint tensor by tensor (`postlens.diffs.weights.checkpoint_io`): a truncated file, a corrupted
header or an entry that does not fit the file raises `CheckpointError` naming the file.

Example:
    >>> from postlens.models.specs import ORGANISM_ROOT
    >>> infos = read_header(ORGANISM_ROOT / "base" / "model.safetensors")
    >>> infos["model.norm.weight"].shape
    (128,)
"""

from __future__ import annotations

import functools
import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postlens.errors import CheckpointError

if TYPE_CHECKING:
    import torch

_MAX_HEADER = 100 * 2**20  # the safetensors format caps headers at 100 MB
#: safetensors dtype code → (bytes per entry, name of the torch dtype). bf16 and fp8 have no
#: numpy equivalent; torch views them. Torch itself is imported only when a torch dtype is asked
#: for (`torch_dtype`), so that reading headers (and `postlens weights`) does not load it.
CODES: dict[str, tuple[int, str]] = {
    "F64": (8, "float64"), "F32": (4, "float32"), "F16": (2, "float16"), "BF16": (2, "bfloat16"),
    "I64": (8, "int64"), "I32": (4, "int32"), "I16": (2, "int16"), "I8": (1, "int8"),
    "U8": (1, "uint8"), "BOOL": (1, "bool"),
    "F8_E4M3": (1, "float8_e4m3fn"), "F8_E5M2": (1, "float8_e5m2"),
}  # fmt: skip


@functools.cache
def torch_dtype(code: str) -> torch.dtype:
    """The torch dtype of a safetensors dtype code, or of a `dtype_code` of a ``.bin`` tensor.

    Example:
        >>> torch_dtype("BF16")
        torch.bfloat16
    """
    import torch

    name = CODES[code][1] if code in CODES else code.removeprefix("torch.")
    return getattr(torch, name)


def dtype_code(dtype: torch.dtype) -> str:
    """The safetensors code of a torch dtype (``str(dtype)`` for one safetensors lacks).

    Example:
        >>> import torch
        >>> dtype_code(torch.float32), dtype_code(torch.complex64)
        ('F32', 'torch.complex64')
    """
    return next((c for c in CODES if torch_dtype(c) == dtype), str(dtype))


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives, known from the header alone.

    Attributes:
        file: the file holding it.
        code: storage dtype as a safetensors code (``"BF16"``, ``"F32"``...; `dtype_code`).
        shape: tensor shape.
        start: absolute byte offset of its data in the file (``None`` for ``.bin``).
        nbytes: size of its data in bytes.
    """

    file: Path
    code: str
    shape: tuple[int, ...]
    start: int | None = None
    nbytes: int = 0

    @property
    def dtype(self) -> torch.dtype:
        """Storage dtype as a torch dtype (imports torch)."""
        return torch_dtype(self.code)


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Parse and validate a safetensors header (no tensor data is read).

    Raises:
        CheckpointError: truncated file, corrupted header, or entries that do not fit the file.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes)")
        (n,) = struct.unpack("<Q", raw)
        if n > min(size - 8, _MAX_HEADER):
            raise CheckpointError(f"{path}: corrupted safetensors header (declares {n} bytes)")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{path}: corrupted safetensors header ({err})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupted safetensors header (not a JSON object)")
    header.pop("__metadata__", None)
    infos = {name: _entry(path, name, meta, 8 + n) for name, meta in header.items()}
    end = max((i.start + i.nbytes for i in infos.values() if i.start), default=0)
    if end > size:
        raise CheckpointError(
            f"{path}: truncated safetensors file: tensors need {end} bytes, file has {size}"
        )
    return infos


def _entry(path: Path, name: str, meta: Any, data_start: int) -> TensorInfo:
    try:
        code = meta["dtype"]
        itemsize = CODES[code][0]
        shape = tuple(int(s) for s in meta["shape"])
        begin, end = (int(x) for x in meta["data_offsets"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: corrupted header entry for {name!r} ({err!r})") from None
    nbytes = math.prod(shape) * itemsize
    if min(shape, default=0) < 0 or begin < 0 or end - begin != nbytes:
        raise CheckpointError(
            f"{path}: corrupted header entry for {name!r}: shape {list(shape)} of "
            f"{meta['dtype']} needs {nbytes} bytes, offsets span {end - begin}"
        )
    return TensorInfo(path, code, shape, data_start + begin, nbytes)
