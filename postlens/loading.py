"""Safe loading of a Hugging Face causal LM and its tokenizer from a model spec.

Loading never unpickles untrusted files: safetensors is preferred; a ``.bin`` checkpoint is only
read through transformers with ``weights_only=True`` semantics (torch >= 2.6 refuses pickled code).
``trust_remote_code`` stays off unless the caller turns it on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postlens.errors import CheckpointError, SpecError
from postlens.specs import ResolvedSpec, resolve_spec

logger = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model.

    Attributes:
        device: a torch device string, e.g. ``"cpu"`` or ``"cuda:0"``; ``None`` picks CPU unless
            ``device_map`` is given.
        dtype: ``"float32"``, ``"bfloat16"``, ``"float16"`` or ``None`` (float32).
        device_map: passed to transformers (accelerate), e.g. ``"auto"``, for pairs too large for
            one device.
        trust_remote_code: let transformers run code shipped with the checkpoint. Off by default.
    """

    device: str | None = None
    dtype: str | None = None
    device_map: str | dict[str, Any] | None = None
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in (None, "float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        if self.device is not None and self.device_map is not None:
            raise ValueError("give either device or device_map, not both")

    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype or "float32")


def check_safetensors_file(path: Path) -> None:
    """Validate a safetensors file's header without reading its tensors.

    Raises:
        CheckpointError: the file is truncated or its header is corrupted, naming the file.
    """
    from postlens.safetensors_header import read_header  # imports torch: only when loading

    read_header(path)


def check_model_folder(path: Path) -> None:
    """Check that a local model folder holds weights and that its safetensors are readable."""
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise CheckpointError(
            f"{path}: no weights found (expected one of {', '.join(WEIGHT_FILES)})"
        )
    for file in sorted(path.glob("*.safetensors")):
        check_safetensors_file(file)


def load_tokenizer(spec: ResolvedSpec, options: LoadOptions) -> Any:
    """Load a tokenizer with ``from_pretrained`` (TransformerBridge needs one loaded this way)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(
            spec.location, trust_remote_code=options.trust_remote_code
        )
    except (OSError, ValueError) as err:
        raise SpecError(f"{spec.spec}: cannot load the tokenizer ({err})") from None
    if tok.pad_token is None:
        # Batched runs need a pad token; eos is the usual, harmless choice for causal LMs.
        tok.pad_token = tok.eos_token
    return tok


def load_hf_model(spec: str | ResolvedSpec, options: LoadOptions | None = None) -> Any:
    """Load a causal LM from a spec, safely, in eval mode.

    Example:
        >>> model = load_hf_model("organism:base")  # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM

    options = options or LoadOptions()
    resolved = spec if isinstance(spec, ResolvedSpec) else resolve_spec(spec)
    if resolved.path is not None:
        check_model_folder(resolved.path)
    kwargs: dict[str, Any] = {
        "dtype": options.torch_dtype(),
        "trust_remote_code": options.trust_remote_code,
    }
    if options.device_map is not None:
        kwargs["device_map"] = options.device_map
    if resolved.path is not None and any(resolved.path.glob("*.safetensors")):
        kwargs["use_safetensors"] = True
    try:
        model = AutoModelForCausalLM.from_pretrained(resolved.location, **kwargs)
    except (OSError, ValueError, KeyError) as err:
        raise CheckpointError(f"{resolved.spec}: cannot load the model ({err})") from None
    if options.device_map is None:
        model.to(options.device or "cpu")
    model.eval()
    return model
