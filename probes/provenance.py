"""Saving probes and directions with provenance, and refusing to apply them to the wrong model.

An artifact is a folder with ``config.json`` (what it is, which model, layer and hook it was
trained on, a fingerprint of that model's unembedding) and ``model.safetensors`` (its tensors),
written to a temporary folder and renamed into place.

Example:
    >>> save_artifact("probe/", {"kind": "confidence"}, {"w": torch.zeros(4)})  # doctest: +SKIP
    >>> config, tensors = load_artifact("probe/")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from postlens.errors import CheckpointError, PostlensError


def model_fingerprint(hf_model: Any) -> str:
    """SHA-256 (first 16 hex digits) of the model's unembedding weights, as float32 bytes."""
    weight = hf_model.get_output_embeddings().weight.detach().float().cpu().contiguous()
    return hashlib.sha256(weight.numpy().tobytes()).hexdigest()[:16]


@dataclass
class Provenance:
    """Where a probe or direction comes from.

    Attributes:
        model: the model's name or spec.
        layer: the block whose residual stream it reads.
        hook: the hook name, e.g. ``blocks.2.hook_resid_post``.
        d_model: residual width.
        n_layers: block count.
        fingerprint: `model_fingerprint` of the model.
        postlens_version: the version that wrote it.
        created: UTC timestamp.
    """

    model: str
    layer: int
    hook: str
    d_model: int
    n_layers: int
    fingerprint: str
    postlens_version: str = ""
    created: str = ""

    @classmethod
    def of(cls, hf_model: Any, layer: int, name: str | None = None) -> Provenance:
        import postlens

        cfg = hf_model.config
        return cls(
            model=name or getattr(cfg, "_name_or_path", "") or type(hf_model).__name__,
            layer=layer,
            hook=f"blocks.{layer}.hook_resid_post",
            d_model=cfg.hidden_size,
            n_layers=cfg.num_hidden_layers,
            fingerprint=model_fingerprint(hf_model),
            postlens_version=postlens.__version__,
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )

    def check(self, hf_model: Any, what: str = "probe") -> None:
        """Refuse a model of another shape; warn when it is not the model trained on."""
        cfg = hf_model.config
        if cfg.hidden_size != self.d_model or self.layer >= cfg.num_hidden_layers:
            raise PostlensError(
                f"this {what} was trained on {self.model} (d_model {self.d_model}, layer {self.layer} "
                f"of {self.n_layers}); the model given has d_model {cfg.hidden_size} and "
                f"{cfg.num_hidden_layers} layers"
            )
        if model_fingerprint(hf_model) != self.fingerprint:
            warnings.warn(
                f"{what} trained on {self.model} (fingerprint {self.fingerprint}) applied to a "
                "different model of the same shape; readings may not mean the same thing",
                stacklevel=3,
            )


def save_artifact(path: str | Path, config: dict[str, Any], tensors: dict[str, Tensor]) -> Path:
    """Write ``config.json`` + ``model.safetensors`` atomically (temp folder, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (tmp / "config.json").write_text(json.dumps(config, indent=2, default=_plain))
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in tensors.items()},
            str(tmp / "model.safetensors"),
        )
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_artifact(path: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Read an artifact written by `save_artifact` (safetensors only: nothing is unpickled)."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        config = json.loads((path / "config.json").read_text())
        tensors = load_file(str(path / "model.safetensors"))
    except (OSError, json.JSONDecodeError, Exception) as err:
        raise CheckpointError(f"{path}: not a readable postlens artifact ({err})") from None
    return config, tensors


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__}")
