"""SHA-256 of the weight files a model was loaded from, for provenance.

One place for it: the report's fingerprint of each model and a crosscoder's provenance both
name the exact files they read, so a result can be matched to its checkpoint later.

Example:
    >>> from postlens.models.specs import resolve_spec
    >>> sorted(weight_hashes(resolve_spec("organism:base")))
    ['model.safetensors']
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from postlens.errors import PostlensError
from postlens.models.specs import ResolvedSpec, resolve_spec


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: Spec kinds whose weights are local files (a hub id's are not).
HASHED_KINDS = ("organism", "local", "adapter", "gguf")


def weight_hashes(spec: ResolvedSpec) -> dict[str, str]:
    """File name → SHA-256 of every weight file `spec` loads: its ``*.safetensors`` files, or
    its GGUF file (hub ids and models in memory: none)."""
    if spec.kind == "gguf":
        return {spec.gguf_path.name: sha256_file(spec.gguf_path)}
    if spec.kind in HASHED_KINDS and Path(spec.location).is_dir():
        return {f.name: sha256_file(f) for f in sorted(Path(spec.location).glob("*.safetensors"))}
    return {}


def location_hashes(location: str | None) -> dict[str, str]:
    """`weight_hashes` of whatever a path names (a model folder or a GGUF file); none for
    anything that is not one.

    Example:
        >>> location_hashes(None)
        {}
    """
    if not location or not Path(location).exists():
        return {}
    try:
        return weight_hashes(resolve_spec(location))
    except PostlensError:
        return {}
