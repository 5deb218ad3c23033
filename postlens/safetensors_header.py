"""Parse and validate safetensors headers without reading tensor data.

One home for header checks, used when loading a model (`postlens.loading`) and when streaming a
checkpoint tensor by tensor (`postlens.diffs.checkpoint_io`): a truncated file, a corrupted
header or an entry that does not fit the file raises `CheckpointError` naming the file.

Example:
    >>> from postlens.specs import ORGANISM_ROOT
    >>> infos = read_header(ORGANISM_ROOT / "base" / "model.safetensors")
    >>> infos["model.norm.weight"].shape
    (128,)
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from postlens.errors import CheckpointError

_MAX_HEADER = 100 * 2**20  # the safetensors format caps headers at 100 MB
#: safetensors dtype codes → torch dtypes (bf16 and fp8 have no numpy equivalent; torch views them).
DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}  # fmt: skip


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives, known from the header alone.

    Attributes:
        file: the file holding it.
        dtype: storage dtype.
        shape: tensor shape.
        start: absolute byte offset of its data in the file (``None`` for ``.bin``).
        nbytes: size of its data in bytes.
    """

    file: Path
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int | None = None
    nbytes: int = 0


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
        dtype = DTYPES[meta["dtype"]]
        shape = tuple(int(s) for s in meta["shape"])
        begin, end = (int(x) for x in meta["data_offsets"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: corrupted header entry for {name!r} ({err!r})") from None
    nbytes = math.prod(shape) * dtype.itemsize
    if min(shape, default=0) < 0 or begin < 0 or end - begin != nbytes:
        raise CheckpointError(
            f"{path}: corrupted header entry for {name!r}: shape {list(shape)} of "
            f"{meta['dtype']} needs {nbytes} bytes, offsets span {end - begin}"
        )
    return TensorInfo(path, dtype, shape, data_start + begin, nbytes)
