"""Read a checkpoint tensor by tensor, memory-mapped, without building the model.

Single-file and sharded (``model.safetensors.index.json``) safetensors checkpoints are opened
with ``safe_open`` (memory-mapped; a tensor's bytes are read only when it is asked for).
``.bin`` checkpoints are read with ``torch.load(weights_only=True, mmap=True)``: nothing is
unpickled beyond tensors, but the whole state dict is mapped at once (a slower path).

Example:
    >>> reader = open_checkpoint("organism:base")  # doctest: +SKIP
    >>> reader.get("model.norm.weight").shape  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from postlens.errors import CheckpointError
from postlens.loading import check_safetensors_file
from postlens.specs import resolve_spec


@dataclass
class CheckpointReader:
    """Lazy access to a checkpoint's tensors.

    Attributes:
        root: the checkpoint folder.
        files: tensor name → file holding it.
        tie_word_embeddings: the config says the unembedding is the embedding.
    """

    root: Path
    files: dict[str, Path]
    tie_word_embeddings: bool = False
    _handles: dict[Path, Any] = field(default_factory=dict, repr=False)
    _bin: dict[Path, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)

    def names(self) -> list[str]:
        return list(self.files)

    def _handle(self, path: Path) -> Any:
        if path not in self._handles:
            from safetensors import safe_open

            try:
                self._handles[path] = safe_open(str(path), framework="pt")
            except Exception as err:  # safetensors raises its own error types
                raise CheckpointError(f"{path}: cannot open safetensors file ({err})") from None
        return self._handles[path]

    def get(self, name: str) -> torch.Tensor:
        """One tensor, as stored (dtype unchanged)."""
        path = self.files[name]
        if path.suffix == ".bin":
            if path not in self._bin:
                self._bin[path] = _load_bin(path)
            return self._bin[path][name]
        try:
            return self._handle(path).get_tensor(name)
        except Exception as err:
            raise CheckpointError(f"{path}: cannot read tensor {name!r} ({err})") from None


def _load_bin(path: Path) -> dict[str, torch.Tensor]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        raise CheckpointError(f"{path}: cannot read .bin checkpoint safely ({err})") from None


def _safetensors_names(path: Path) -> list[str]:
    check_safetensors_file(path)
    with path.open("rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    return [k for k in header if k != "__metadata__"]


def _index_files(root: Path, index_name: str) -> dict[str, Path]:
    index = root / index_name
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError) as err:
        raise CheckpointError(f"{index}: not a valid checkpoint index ({err})") from None
    for shard in sorted(set(weight_map.values())):
        if not (root / shard).is_file():
            raise CheckpointError(f"{index}: shard {shard} is missing")
        if shard.endswith(".safetensors"):
            check_safetensors_file(root / shard)
    return {name: root / shard for name, shard in weight_map.items()}


def _find_files(root: Path) -> dict[str, Path]:
    if (root / "model.safetensors.index.json").is_file():
        return _index_files(root, "model.safetensors.index.json")
    singles = sorted(root.glob("*.safetensors"))
    if singles:
        return {name: f for f in singles for name in _safetensors_names(f)}
    if (root / "pytorch_model.bin.index.json").is_file():
        return _index_files(root, "pytorch_model.bin.index.json")
    if (root / "pytorch_model.bin").is_file():
        path = root / "pytorch_model.bin"
        return dict.fromkeys(_load_bin(path), path)
    raise CheckpointError(f"{root}: no safetensors or .bin weights found")


def open_checkpoint(spec: str | Path) -> CheckpointReader:
    """Open a checkpoint folder (or any model spec) for streaming.

    Raises:
        CheckpointError: no weights, a truncated or corrupted file, a broken index.
    """
    resolved = resolve_spec(spec)
    resolved_path = _download(resolved.location) if resolved.path is None else resolved.path
    tie = False
    config = resolved_path / "config.json"
    if config.is_file():
        tie = bool(json.loads(config.read_text()).get("tie_word_embeddings", False))
    return CheckpointReader(resolved_path, _find_files(resolved_path), tie)


def _download(repo_id: str) -> Path:
    """Fetch only the safetensors and JSON files of a hub model (works where a hub is reachable)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=["*.safetensors", "*.json"]))
    except Exception as err:
        raise CheckpointError(f"{repo_id}: cannot download from the hub ({err})") from None
