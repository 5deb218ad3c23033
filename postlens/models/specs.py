"""Model specs: one string names a model, wherever it lives.

A spec is one of

* ``organism:<name>``: a checkpoint of the model organism shipped with postlens
  (``organism:base``, ``organism:sft``, ``organism:rl``, and the chat child ``organism:chat-sft``);
  ``organism:rl-lora`` is a PEFT adapter folder, so its kind is ``"adapter"``;
* a local folder in Hugging Face format (``config.json`` plus weights);
* a PEFT LoRA adapter folder (``adapter_config.json`` plus ``adapter_model.safetensors``), kind
  ``"adapter"``: the model is its base with the LoRA update applied (`postlens.models.adapters`);
* a GGUF file (llama.cpp's format), or a folder holding one and no ``config.json``, kind
  ``"gguf"``: dequantized on loading (`postlens.models.gguf`);
* a hub id (``org/name``), which only works where a hub is reachable.

Example:
    >>> from postlens.models.specs import resolve_spec
    >>> resolve_spec("organism:base").kind
    'organism'
    >>> resolve_spec("organism:rl-lora").kind
    'adapter'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from postlens.errors import CheckpointError, SpecError

ORGANISM_PREFIX = "organism:"
#: The one place where organism names are registered: the shipped toy organism's ...
ORGANISM_NAMES = ("base", "sft", "rl", "chat-sft", "rl-lora")
#: ... and the real-LM organism's, which `postlens organism build smol` writes to the cache.
BUILT_ORGANISM_NAMES = ("smol-base", "smol-sft", "smol-rl", "smol-lora")
ORGANISM_ROOT = Path(__file__).resolve().parent.parent / "organism" / "checkpoints"
#: Environment variable naming the folder built organisms go to.
CACHE_ENV = "POSTLENS_CACHE"
ADAPTER_CONFIG = "adapter_config.json"
_MODEL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
GGUF_SUFFIX = ".gguf"


@dataclass(frozen=True)
class ResolvedSpec:
    """Where a model spec points.

    Attributes:
        spec: the string the user gave.
        kind: ``"organism"``, ``"local"``, ``"adapter"`` (a PEFT LoRA folder), ``"gguf"`` or
            ``"hub"``.
        location: a folder path (organism, local, adapter, the GGUF file's folder) or the hub id.
        file: the GGUF file's name inside `location` (kind ``"gguf"`` only).
    """

    spec: str
    kind: str
    location: str
    file: str | None = None

    @property
    def path(self) -> Path | None:
        """The local folder, or ``None`` for a hub id."""
        return None if self.kind == "hub" else Path(self.location)

    @property
    def gguf_path(self) -> Path:
        """The GGUF file of a ``"gguf"`` spec."""
        if self.file is None:
            raise SpecError(f"{self.spec} is not a GGUF checkpoint")
        return Path(self.location) / self.file


def organism_cache() -> Path:
    """Where built organisms live: ``$POSTLENS_CACHE/organisms``, else
    ``~/.cache/postlens/organisms``."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "postlens") / "organisms"


def organism_path(name: str) -> Path:
    """Folder of organism checkpoint ``name`` (may not exist yet): shipped, or in the cache."""
    if name in BUILT_ORGANISM_NAMES:
        return organism_cache() / name
    if name not in ORGANISM_NAMES:
        raise SpecError(
            f"unknown organism {name!r}: postlens ships {', '.join(ORGANISM_NAMES)} and builds "
            f"{', '.join(BUILT_ORGANISM_NAMES)} (use e.g. 'organism:base')"
        )
    return ORGANISM_ROOT / name


def is_adapter_folder(path: Path) -> bool:
    """True for a PEFT adapter folder: ``adapter_config.json`` and no full model beside it.

    Example:
        >>> is_adapter_folder(organism_path("base"))
        False
    """
    if not (path / ADAPTER_CONFIG).is_file():
        return False
    # A folder holding a full model as well (some trainers save both) is read as that model.
    return not any((path / name).is_file() for name in _MODEL_WEIGHTS)


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(p and not p.startswith(".") for p in parts)


def is_gguf(path: Path) -> bool:
    """True for a path named like a GGUF file."""
    return path.suffix.lower() == GGUF_SUFFIX


def gguf_in(folder: Path) -> Path | None:
    """The one GGUF file of `folder` (``None`` if it has none).

    Raises:
        CheckpointError: the folder holds several, so which one is meant is unclear.
    """
    found = sorted(p for p in folder.iterdir() if p.is_file() and is_gguf(p))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise CheckpointError(f"{folder} holds {len(found)} GGUF files ({names}): name one")
    return found[0] if found else None


def _resolve_path(text: str, path: Path) -> ResolvedSpec:
    if not path.is_dir():
        if is_gguf(path):
            return ResolvedSpec(text, "gguf", str(path.parent), path.name)
        raise SpecError(
            f"model spec {text!r} is a file; expected a Hugging Face model folder or a .gguf file"
        )
    if is_adapter_folder(path):
        return ResolvedSpec(text, "adapter", str(path))
    if (path / "config.json").is_file():
        return ResolvedSpec(text, "local", str(path))
    gguf = gguf_in(path)
    if gguf is not None:
        return ResolvedSpec(text, "gguf", str(path), gguf.name)
    raise SpecError(
        f"model folder {text!r} has no config.json (nor adapter_config.json of an adapter, "
        "nor a .gguf file)"
    )


def resolve_spec(spec: str | Path) -> ResolvedSpec:
    """Resolve a model spec to a local folder or a hub id.

    Args:
        spec: ``organism:<name>``, a local folder, a ``.gguf`` file or a hub id.

    Returns:
        The resolved spec.

    Raises:
        SpecError: the spec names an unknown organism, a missing organism checkpoint, or a
            path that does not exist and is not shaped like a hub id.
        CheckpointError: a folder holds several GGUF files.
    """
    text = str(spec)
    if text.startswith(ORGANISM_PREFIX):
        name = text[len(ORGANISM_PREFIX) :]
        path = organism_path(name)
        if is_adapter_folder(path):  # organism:rl-lora, a LoRA adapter on organism:base
            return ResolvedSpec(text, "adapter", str(path))
        if not (path / "config.json").is_file():
            how = (
                "build it with `postlens organism build smol` (or set POSTLENS_CACHE to where "
                "it was built)"
                if name in BUILT_ORGANISM_NAMES
                else "regenerate it with `python -m postlens.organism.train --out DIR`"
            )
            raise SpecError(f"organism checkpoint {text!r} is not at {path}; {how}")
        return ResolvedSpec(text, "organism", str(path))
    path = Path(text).expanduser()
    if path.exists():
        return _resolve_path(text, path.resolve())
    if _looks_like_hub_id(text) and not text.startswith(("/", "./", "../", "~")):
        return ResolvedSpec(text, "hub", text)
    raise SpecError(
        f"unknown model spec {text!r}: not an existing folder, not a hub id (org/name), "
        f"and not organism:<{'|'.join(ORGANISM_NAMES)}>"
    )
