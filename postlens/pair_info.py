"""A description of a loaded pair: what `postlens info` prints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from postlens.models.specs import ResolvedSpec
from postlens.pair import ModelPair


@dataclass
class ModelInfo:
    """One model of a pair.

    Attributes:
        source: what its weights were read from when that is not plain dense tensors (a GGUF
            file's quantization types, which the loaded model was dequantized from; a LoRA
            adapter's rank and alpha); else ``""``.
    """

    spec: str
    location: str
    architecture: str
    n_params: int
    dtype: str
    source: str = ""


@dataclass
class PairInfo:
    """What a loaded pair is made of.

    Attributes:
        backend: the backend name.
        base: the base model.
        post: the post-trained model.
        n_layers: blocks per model.
        d_model: residual width.
        vocab_size: the number of ids the two models share.
        tokenizer_check: the tokenizer comparison in one line.
        tokens: the tokenizer comparison (`postlens.models.compat.TokenizerComparison.to_dict`).
        chat_template: whose chat template formats prompts (``post``, ``base`` or ``none``).
        hook_names: every hook name both models answer to.
        memory_bytes: the pair's parameters and buffers.
    """

    backend: str
    base: ModelInfo
    post: ModelInfo
    n_layers: int
    d_model: int
    vocab_size: int
    tokenizer_check: str
    memory_bytes: int
    hook_names: list[str] = field(default_factory=list)
    tokens: dict[str, Any] = field(default_factory=dict)
    chat_template: str = "none"
    differences: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _model_info(pair: ModelPair, which: str) -> ModelInfo:
    backend = pair[which]  # type: ignore[index]
    spec = pair.base_spec if which == "base" else pair.post_spec
    model = backend.hf_model
    archs = getattr(model.config, "architectures", None) or [type(model).__name__]
    return ModelInfo(
        spec=spec.spec,
        location=spec.location,
        architecture=f"{archs[0]} ({model.config.model_type})",
        n_params=sum(p.numel() for p in model.parameters()),
        dtype=str(next(model.parameters()).dtype).removeprefix("torch."),
        source=_source(spec),
    )


def _source(spec: ResolvedSpec) -> str:
    if spec.kind == "adapter":  # loaded as its base with the adapter merged: say so
        from postlens.models.adapters import read_adapter_config

        config = read_adapter_config(spec.location)
        return f"LoRA adapter (r={config.r}, alpha={config.alpha:g}) merged into its base"
    if spec.kind != "gguf":
        return ""
    from postlens.models.gguf import gguf_info

    return gguf_info(spec.gguf_path).describe()


def describe_pair(pair: ModelPair) -> PairInfo:
    """Describe a pair: models, sizes, and how their tokenizers differ (reported, not refused).

    Example:
        >>> import postlens as pl
        >>> describe_pair(pl.load("organism:base", rl="organism:rl").pair).n_layers
        4
    """
    tokens = pair.tokens
    return PairInfo(
        backend=pair.backend_name,
        base=_model_info(pair, "base"),
        post=_model_info(pair, "post"),
        n_layers=pair.n_layers,
        d_model=pair.d_model,
        vocab_size=tokens.n_shared,
        tokenizer_check=tokens.describe(),
        memory_bytes=pair.memory_bytes(),
        hook_names=pair.hook_names(),
        tokens=tokens.to_dict(),
        chat_template=pair.chat.which,
        differences=tokens.lines(),
    )
