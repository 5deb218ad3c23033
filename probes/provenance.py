"""Saving probes and directions with provenance, and refusing to apply them to the wrong model.

An artifact is a folder with ``config.json`` (what it is, which model, layer and hook it was
trained on, a fingerprint of that model's unembedding) and ``model.safetensors`` (its tensors),
written to a temporary folder and renamed into place.

Example:
    >>> _ = save_artifact("probe", {"kind": "confidence"}, {"w": torch.zeros(4)})
    >>> config, tensors = load_artifact("probe")
    >>> config["kind"], tensors["w"].shape
    ('confidence', torch.Size([4]))
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor

from postlens.errors import CheckpointError, ConfigError, PostlensError

if TYPE_CHECKING:
    from postlens.backends.base import ModelLike
    from postlens.models.types import Model

logger = logging.getLogger(__name__)


def unwrap_model(model: ModelLike) -> Model:
    """The Hugging Face model behind a `Backend` (e.g. ``pair.post``), or `model` itself."""
    return cast("Model", getattr(model, "hf_model", model))


def model_fingerprint(hf_model: ModelLike) -> str:
    """SHA-256 (first 16 hex digits) of the model's unembedding weights, as float32 bytes.

    The unembedding changes under any fine-tuning that touches it and is present in every causal
    LM, so it tells "the model the probe was fitted on" from "another model of the same shape"
    without hashing every weight. Accepts a `Backend` too.

    Example:
        >>> from postlens.testing import tiny_model
        >>> len(model_fingerprint(tiny_model("llama")[0])) > 8
        True
    """
    model = unwrap_model(hf_model)
    head = model.get_output_embeddings() or model.get_input_embeddings()
    weight = cast(torch.Tensor, head.weight).detach().float().cpu().contiguous()
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
    def of(
        cls, hf_model: ModelLike, layer: int, name: str | None = None, hook: str | None = None
    ) -> Provenance:
        """The provenance of something read from `hf_model` (or a `Backend`) at `layer`."""
        import postlens

        model = unwrap_model(hf_model)
        cfg = model.config
        if not 0 <= layer < cfg.num_hidden_layers:
            raise ConfigError(f"layer {layer} out of range: the model has {cfg.num_hidden_layers}")
        return cls(
            model=name or getattr(cfg, "_name_or_path", "") or type(model).__name__,
            layer=layer,
            hook=hook or f"blocks.{layer}.hook_resid_post",
            d_model=cfg.hidden_size,
            n_layers=cfg.num_hidden_layers,
            fingerprint=model_fingerprint(model),
            postlens_version=postlens.__version__,
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )

    def check(self, hf_model: ModelLike, what: str = "probe", strict_shape: bool = True) -> None:
        """`check_compatible` with this provenance."""
        check_compatible(self, hf_model, strict_shape=strict_shape, what=what)


def check_compatible(
    provenance: Provenance,
    hf_model: ModelLike,
    strict_shape: bool = True,
    what: str = "probe",
    fingerprint: bool = True,
) -> None:
    """Refuse a model of another shape; warn when it is not the model the artifact was fitted on.

    Args:
        provenance: where the probe or direction comes from.
        hf_model: the model to apply it to (a Hugging Face model or a `Backend`).
        strict_shape: also require the same layer count (otherwise only that the layer exists).
        what: what is being applied, for the messages.
        fingerprint: compare unembedding fingerprints (a hash of the vocab x d_model matrix;
            turn off when the model is known to drift, e.g. inside a training loop).

    Raises:
        PostlensError: d_model differs, or the layer count differs (``strict_shape``) or the
            layer does not exist.

    Example:
        >>> import postlens as pl
        >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
        >>> check_compatible(Provenance.of(pair.base, 2), pair.post, fingerprint=False)
    """
    cfg = unwrap_model(hf_model).config
    problems = []
    if cfg.hidden_size != provenance.d_model:
        problems.append(f"d_model {cfg.hidden_size} (expected {provenance.d_model})")
    if strict_shape and cfg.num_hidden_layers != provenance.n_layers:
        problems.append(f"{cfg.num_hidden_layers} layers (expected {provenance.n_layers})")
    elif provenance.layer >= cfg.num_hidden_layers:
        problems.append(f"{cfg.num_hidden_layers} layers (no layer {provenance.layer})")
    if problems:
        raise PostlensError(
            f"this {what} was fitted on {provenance.model} (d_model {provenance.d_model}, "
            f"layer {provenance.layer} of {provenance.n_layers}); the model given has "
            + " and ".join(problems)
        )
    if fingerprint and model_fingerprint(hf_model) != provenance.fingerprint:
        message = (
            f"{what} fitted on {provenance.model} (fingerprint {provenance.fingerprint}) applied "
            "to a different model of the same shape; readings may not mean the same thing"
        )
        logger.warning(message)
        warnings.warn(message, stacklevel=3)


def save_artifact(path: str | Path, config: dict[str, Any], tensors: dict[str, Tensor]) -> Path:
    """Write ``config.json`` + ``model.safetensors`` atomically (temp folder, then rename).

    A reader never sees a half-written artifact: both files go to a temporary sibling folder,
    which then replaces `path` (an existing artifact there is overwritten).
    """
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
        # Move an old artifact aside rather than delete it first: a failure between the two
        # renames leaves the old one recoverable, never a half-written folder at `path`.
        old = path.with_name(f".{path.name}.old") if path.exists() else None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
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
    except Exception as err:  # missing, truncated or corrupted: one clear error
        raise CheckpointError(f"{path}: not a readable postlens artifact ({err})") from None
    return config, tensors


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__}")
