"""Read a checkpoint tensor by tensor, memory-mapped, without building the model.

Safetensors files (single or sharded with ``model.safetensors.index.json``) are read by parsing
their JSON header ourselves and mapping each tensor's byte range on its own with ``mmap``: a
tensor is a zero-copy view of the page cache, and its mapping is released as soon as the tensor
is dropped, so resident memory stays at the tensors in use instead of growing to the whole
checkpoint (as one long-lived mapping per file does). Headers are validated up front: a
truncated file or a corrupted header raises `CheckpointError` naming the file.
`CheckpointReader.raw` gives a float32 or bfloat16 tensor as a numpy view of its stored entries
instead (`RawTensor`, for the C kernel): the usual ``postlens weights`` run never imports torch.

``.bin`` checkpoints are read with ``torch.load(weights_only=True, mmap=True)``: nothing but
tensors is unpickled, but a whole file is mapped at once and kept until the reader is dropped
(the slower, heavier path; prefer safetensors).

Example:
    >>> reader = open_checkpoint("organism:base")
    >>> tuple(reader.get("model.norm.weight").shape)
    (128,)
    >>> raw = reader.raw("model.norm.weight")
    >>> raw.code, raw.shape, bool((raw.torch() == reader.get("model.norm.weight")).all())
    ('F32', (128,), True)
"""

from __future__ import annotations

import json
import mmap
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from postlens.diffs.weights.stats import RAW_DTYPES, RawTensor
from postlens.errors import CheckpointError
from postlens.models.adapters import read_adapter_config
from postlens.models.gguf import GGUFTensors
from postlens.models.safetensors_header import TensorInfo, dtype_code, read_header
from postlens.models.specs import resolve_spec

if TYPE_CHECKING:
    import torch

SAFE_INDEX, BIN_INDEX, BIN_SINGLE = (
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
)


class TensorSource(Protocol):
    """What the weight comparison reads of a checkpoint, whatever its format."""

    @property
    def tie_word_embeddings(self) -> bool: ...

    def names(self) -> list[str]: ...
    def shapes(self) -> dict[str, tuple[int, ...]]: ...
    def get(self, name: str) -> torch.Tensor: ...
    def raw(self, name: str) -> RawTensor | None: ...


@dataclass
class CheckpointReader:
    """Lazy, memory-mapped access to a checkpoint's tensors.

    Attributes:
        root: the checkpoint folder.
        infos: tensor name → where it lives (header information only).
        tie_word_embeddings: the config says the unembedding is the embedding.
    """

    root: Path
    infos: dict[str, TensorInfo]
    tie_word_embeddings: bool = False
    _bin: dict[Path, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)

    def names(self) -> list[str]:
        """Tensor names in storage order."""
        return list(self.infos)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Each tensor's shape, from the headers."""
        return {name: tuple(info.shape) for name, info in self.infos.items()}

    def get(self, name: str) -> torch.Tensor:
        """One tensor as stored (dtype unchanged), a read-only view of the mapped file.

        Do not write into it: the mapping is shared with the page cache.
        """
        info = self.infos[name]
        if info.start is None:
            if info.file not in self._bin:
                self._bin[info.file] = _load_bin(info.file)
            return self._bin[info.file][name]
        return _map_tensor(info, name)

    def raw(self, name: str) -> RawTensor | None:
        """One float32 or bfloat16 tensor of a safetensors file as its stored entries (numpy,
        no torch: `RawTensor`); ``None`` for a ``.bin`` tensor or another dtype (use `get`)."""
        info = self.infos[name]
        if info.start is None or info.code not in RAW_DTYPES:
            return None
        dtype = RAW_DTYPES[info.code][1]
        if info.nbytes == 0:
            return RawTensor(np.empty(0, dtype=dtype), info.code, info.shape)
        buf, offset = _map_bytes(info, name)
        flat = np.frombuffer(buf, dtype=np.uint8, count=info.nbytes, offset=offset)
        if info.start % np.dtype(dtype).itemsize:
            flat = flat.copy()  # misaligned for its dtype (never written so by safetensors)
        return RawTensor(flat.view(dtype), info.code, info.shape)


def _map_bytes(info: TensorInfo, name: str) -> tuple[mmap.mmap, int]:
    """A read-only mapping of the pages holding `info`'s bytes (from the page boundary below),
    and the offset of the tensor's first byte in it."""
    assert info.start is not None
    offset = info.start % mmap.ALLOCATIONGRANULARITY
    aligned = info.start - offset
    try:
        with open(info.file, "rb") as f:
            buf = mmap.mmap(
                f.fileno(), info.start + info.nbytes - aligned, mmap.MAP_SHARED, mmap.PROT_READ,
                offset=aligned,
            )  # fmt: skip
        return buf, offset
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{info.file}: cannot map tensor {name!r} ({err})") from None


def _map_tensor(info: TensorInfo, name: str) -> torch.Tensor:
    import torch

    assert info.start is not None
    if info.nbytes == 0:
        return torch.empty(info.shape, dtype=info.dtype)
    buf, offset = _map_bytes(info, name)
    with warnings.catch_warnings():
        # Read-only on purpose: the tensor is a view of the page cache, never written.
        warnings.simplefilter("ignore", UserWarning)
        flat = torch.frombuffer(buf, dtype=torch.uint8, count=info.nbytes, offset=offset)
    if info.start % info.dtype.itemsize:
        flat = flat.clone()  # misaligned for its dtype (never written so by safetensors)
    return flat.view(info.dtype).view(info.shape)


def _load_bin(path: Path) -> dict[str, torch.Tensor]:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # pickle, zip and mmap errors alike
        raise CheckpointError(f"{path}: cannot read .bin checkpoint safely ({err})") from None


def _bin_infos(path: Path, names: set[str] | None = None) -> dict[str, TensorInfo]:
    import torch

    state = _load_bin(path)
    return {
        k: TensorInfo(path, dtype_code(v.dtype), tuple(v.shape), None, v.numel() * v.element_size())
        for k, v in state.items()
        if isinstance(v, torch.Tensor) and (names is None or k in names)
    }


def _from_index(root: Path, index_name: str) -> dict[str, TensorInfo]:
    index = root / index_name
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{index}: not a valid checkpoint index ({err!r})") from None
    infos: dict[str, TensorInfo] = {}
    for shard in sorted(set(weight_map.values())):
        if not (root / shard).is_file():
            raise CheckpointError(f"{index}: shard {shard} is missing")
        wanted = {k for k, v in weight_map.items() if v == shard}
        found = (
            read_header(root / shard)
            if shard.endswith(".safetensors")
            else _bin_infos(root / shard, wanted)
        )
        if missing := sorted(wanted - set(found)):
            raise CheckpointError(f"{root / shard}: lacks {missing[0]!r} that {index_name} lists")
        infos |= {k: found[k] for k in wanted}
    # Storage order (shard, then offset) keeps the reads sequential.
    return dict(sorted(infos.items(), key=lambda kv: (str(kv[1].file), kv[1].start or 0)))


def find_tensors(root: Path) -> dict[str, TensorInfo]:
    """Every tensor of the checkpoint folder `root`, from headers and index files only."""
    if (root / SAFE_INDEX).is_file():
        return _from_index(root, SAFE_INDEX)
    singles = sorted(root.glob("*.safetensors"))
    if singles:
        infos = {k: v for f in singles for k, v in read_header(f).items()}
        return dict(sorted(infos.items(), key=lambda kv: (str(kv[1].file), kv[1].start or 0)))
    if (root / BIN_INDEX).is_file():
        return _from_index(root, BIN_INDEX)
    if (root / BIN_SINGLE).is_file():
        return _bin_infos(root / BIN_SINGLE)
    raise CheckpointError(f"{root}: no safetensors or .bin weights found")


def open_checkpoint(spec: str | Path) -> TensorSource:
    """Open a checkpoint (any model spec: folder, ``organism:<name>``, hub id) for streaming.

    An adapter folder opens as its own tensors (the LoRA factors, peft's names); a GGUF file as
    its tensors under transformers' names, each dequantized when read (`GGUFTensors`).

    Raises:
        SpecError: the spec cannot be resolved.
        CheckpointError: no weights, a truncated or corrupted file, a broken index.
    """
    resolved = resolve_spec(spec)
    if resolved.kind == "adapter":  # the LoRA factors only (`postlens.diffs.weights.adapters`)
        weights = read_adapter_config(resolved.location).weights_file
        assert weights is not None
        infos = read_header(weights) if weights.suffix == ".safetensors" else _bin_infos(weights)
        return CheckpointReader(Path(resolved.location), infos)
    if resolved.kind == "gguf":
        return GGUFTensors(resolved.gguf_path)
    root = _download(resolved.location) if resolved.path is None else resolved.path
    tie = False
    config = root / "config.json"
    if config.is_file():
        try:
            tie = bool(json.loads(config.read_text()).get("tie_word_embeddings", False))
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{config}: not valid JSON ({err})") from None
    return CheckpointReader(root, find_tensors(root), tie)


def _download(repo_id: str) -> Path:
    """Fetch only the safetensors and JSON files of a hub model (where a hub is reachable)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=["*.safetensors", "*.json"]))
    except Exception as err:  # network, auth and missing-repo errors alike
        raise CheckpointError(f"{repo_id}: cannot download from the hub ({err})") from None
