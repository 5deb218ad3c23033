"""PEFT LoRA adapters as post-trained models: their config, their base, their target modules.

An adapter folder (``adapter_config.json`` plus ``adapter_model.safetensors``) is the post model
"base + LoRA update". For a LoRA layer the update is exactly ΔW = scale · B @ A with
scale = lora_alpha / r (rsLoRA: lora_alpha / sqrt(r)), on the target modules only; every other
tensor of the base is unchanged, and rank(ΔW) ≤ r by construction. Plain LoRA and rsLoRA are
supported (per-module ``rank_pattern`` / ``alpha_pattern`` included, matched as peft matches
them); variants whose update is not scale · B @ A (DoRA, QA-LoRA, trainable tokens, layer
replication, LoRA on bare parameters, other peft types) are refused by name.

Everything here reads JSON and safetensors headers only: no tensor, no peft, nothing unpickled
(a ``.bin`` adapter is read later, through torch's ``weights_only`` loader).

Example:
    >>> from postlens.testing import save_tiny_adapter
    >>> cfg = read_adapter_config(save_tiny_adapter("adapter", "organism:base", r=4, alpha=8))
    >>> cfg.r, cfg.scale_for("model.layers.0.self_attn.q_proj")
    (4, (4, 2.0))
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postlens.errors import CheckpointError, NotSupportedError, SpecError
from postlens.models.specs import ADAPTER_CONFIG, ResolvedSpec, resolve_spec

ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
#: Key prefix peft gives every tensor of a causal-LM adapter (PeftModel → LoraModel → model).
PEFT_PREFIXES = ("base_model.model.", "base_model.")
#: Config options whose non-default value means an update that is not scale · B @ A.
_UNSUPPORTED = {
    "use_dora": "DoRA (use_dora)",
    "use_qalora": "QA-LoRA (use_qalora)",
    "use_bdlora": "BD-LoRA (use_bdlora)",
    "lora_bias": "a LoRA bias on B (lora_bias)",
    "trainable_token_indices": "trainable tokens (trainable_token_indices)",
    "layer_replication": "layer replication (layer_replication)",
    "target_parameters": "LoRA on bare parameters (target_parameters)",
    "alora_invocation_tokens": "activated LoRA (alora_invocation_tokens)",
}
#: LoRA factor suffixes → (factor, whether ΔW is (B @ A) transposed, as for embeddings).
LORA_SUFFIXES = {
    ".lora_A.weight": ("A", False),
    ".lora_B.weight": ("B", False),
    ".lora_embedding_A": ("A", True),
    ".lora_embedding_B": ("B", True),
}


@dataclass(frozen=True)
class AdapterConfig:
    """What postlens needs from an ``adapter_config.json``.

    Attributes:
        folder: the adapter folder.
        base_name: ``base_model_name_or_path`` (``None`` when the adapter names no base).
        r: the default LoRA rank.
        alpha: the default ``lora_alpha``.
        use_rslora: scale by alpha / sqrt(r) instead of alpha / r.
        fan_in_fan_out: the base stores these weights as (in, out) (GPT-2's Conv1D).
        rank_pattern: module-name pattern → r, for modules whose rank differs.
        alpha_pattern: module-name pattern → alpha.
        weights_file: ``adapter_model.safetensors`` (or a ``.bin`` read with ``weights_only``).
    """

    folder: Path
    base_name: str | None
    r: int
    alpha: float
    use_rslora: bool = False
    fan_in_fan_out: bool = False
    rank_pattern: dict[str, int] = field(default_factory=dict)
    alpha_pattern: dict[str, float] = field(default_factory=dict)
    weights_file: Path | None = None

    def scale_for(self, module: str) -> tuple[int, float]:
        """(r, scale) of the LoRA layer on `module` (e.g. ``model.layers.0.self_attn.q_proj``).

        Patterns are matched as peft matches them: the pattern must match a dotted suffix.
        """
        r = self.rank_pattern.get(_pattern_key(self.rank_pattern, module), self.r)
        alpha = self.alpha_pattern.get(_pattern_key(self.alpha_pattern, module), self.alpha)
        return r, alpha / (math.sqrt(r) if self.use_rslora else r)


def _pattern_key(patterns: Mapping[str, Any], module: str) -> str:
    # peft.utils.other.get_pattern_key: the first pattern matching a dotted suffix wins.
    for key in patterns:
        if re.match(rf"(.*\.)?({key})$", module):
            return key
    return module


def read_adapter_config(folder: str | Path) -> AdapterConfig:
    """Read and check an adapter folder's ``adapter_config.json``.

    Raises:
        CheckpointError: the JSON is invalid or the weights file is missing.
        NotSupportedError: a peft type other than LoRA, or a LoRA variant (DoRA, ...), named.
    """
    folder = Path(folder)
    path = folder / ADAPTER_CONFIG
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not a valid adapter config ({err})") from None
    kind = data.get("peft_type")
    if str(kind).upper() != "LORA":
        raise NotSupportedError(
            f"{path}: peft_type {kind!r} is not supported; postlens reads LoRA adapters only"
        )
    variants = [label for key, label in _UNSUPPORTED.items() if data.get(key) not in (None, False)]
    if variants:
        raise NotSupportedError(
            f"{path}: {', '.join(variants)} is not supported; postlens reads plain LoRA and "
            "rsLoRA adapters (ΔW = scale · B @ A)"
        )
    weights = next((folder / n for n in ADAPTER_WEIGHTS if (folder / n).is_file()), None)
    if weights is None:
        raise CheckpointError(f"{folder}: no adapter weights ({' or '.join(ADAPTER_WEIGHTS)})")
    try:
        return AdapterConfig(
            folder=folder,
            base_name=data.get("base_model_name_or_path") or None,
            r=int(data["r"]),
            alpha=float(data.get("lora_alpha", 8)),
            use_rslora=bool(data.get("use_rslora", False)),
            fan_in_fan_out=bool(data.get("fan_in_fan_out", False)),
            rank_pattern={str(k): int(v) for k, v in (data.get("rank_pattern") or {}).items()},
            alpha_pattern={str(k): float(v) for k, v in (data.get("alpha_pattern") or {}).items()},
            weights_file=weights,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: bad LoRA settings ({err!r})") from None


def adapter_base(config: AdapterConfig) -> ResolvedSpec | None:
    """The base the adapter names, resolved; ``None`` when it names none.

    Raises:
        SpecError: the named base is neither a folder here nor a hub id.
    """
    if config.base_name is None:
        return None
    try:
        return resolve_spec(config.base_name)
    except SpecError:
        raise SpecError(
            f"{config.folder}: its base {config.base_name!r} (base_model_name_or_path) is not "
            "a model folder here nor a hub id; give the base explicitly"
        ) from None


def _names(spec: ResolvedSpec) -> set[str]:
    """The names a base goes by: its spec, hub id, folder, ``org/name`` of an HF cache path, and
    a GGUF file's name."""
    names = {spec.spec.rstrip("/"), spec.location.rstrip("/")}
    if spec.path is not None:
        path = spec.path.resolve()
        names |= {str(path), path.name, "/".join(path.parts[-2:])}
        for part in path.parts:  # ~/.cache/huggingface/hub/models--org--name/snapshots/<sha>
            if part.startswith("models--"):
                names.add(part[len("models--") :].replace("--", "/"))
    if spec.kind == "gguf":  # a GGUF base also goes by its file's name and path
        names |= {str(spec.file), str(spec.gguf_path.resolve())}
    return names


def base_matches(config: AdapterConfig, base: ResolvedSpec) -> bool:
    """True when the adapter names no base, or a name `base` goes by.

    The same folder (resolved), the same spec or hub id, or the same ``org/name`` or folder
    name counts: an adapter trained on ``meta-llama/Llama-3.1-8B`` matches a local copy in a
    folder called ``Llama-3.1-8B``.
    """
    if config.base_name is None:
        return True
    named = config.base_name.rstrip("/")
    candidates = {named, named.split("/")[-1], "/".join(named.split("/")[-2:])}
    with contextlib.suppress(SpecError):  # a name that is no spec here still compares as a name
        candidates |= {resolve_spec(config.base_name).location}
    return bool(candidates & _names(base))


def check_adapter_base(adapter: ResolvedSpec, base: ResolvedSpec) -> AdapterConfig:
    """Refuse an adapter whose config names another base than `base`.

    Returns:
        The adapter's config.

    Raises:
        SpecError: one line naming the adapter, the base it names and the base given.

    Example:
        >>> from postlens.testing import save_tiny_adapter
        >>> folder = save_tiny_adapter("adapter", "organism:base")
        >>> check_adapter_base(resolve_spec(str(folder)), resolve_spec("organism:sft"))
        Traceback (most recent call last):
        ...
        postlens.errors.SpecError: adapter ...: trained on base ... (base_model_name_or_path), but the base given is 'organism:sft'
    """
    config = read_adapter_config(adapter.location)
    if not base_matches(config, base):
        raise SpecError(
            f"adapter {adapter.spec}: trained on base {config.base_name!r} "
            f"(base_model_name_or_path), but the base given is {base.spec!r}"
        )
    return config


def strip_prefix(key: str) -> str:
    """A peft tensor key without its ``base_model.model.`` prefix (the base's own naming)."""
    for prefix in PEFT_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def split_lora_key(key: str) -> tuple[str, str, bool] | None:
    """(module, ``"A"`` or ``"B"``, transposed) of a LoRA factor key; ``None`` otherwise.

    Example:
        >>> split_lora_key("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
        ('model.layers.0.self_attn.q_proj', 'A', False)
    """
    key = strip_prefix(key)
    for suffix, (factor, transposed) in LORA_SUFFIXES.items():
        if key.endswith(suffix):
            return key[: -len(suffix)], factor, transposed
    return None


@dataclass(frozen=True)
class LoraModule:
    """Where one LoRA layer's factors are, and how they combine: ΔW = scale · B @ A.

    Attributes:
        module: the base module's name (``model.layers.0.self_attn.q_proj``).
        key_a: the adapter tensor key of A (r × in).
        key_b: the adapter tensor key of B (out × r).
        transposed: ΔW is (B @ A)ᵀ (embeddings; ``fan_in_fan_out`` layers such as GPT-2's).
        r: the rank (≥ rank(ΔW)).
        scale: lora_alpha / r, or lora_alpha / sqrt(r) for rsLoRA.
    """

    module: str
    key_a: str
    key_b: str
    transposed: bool
    r: int
    scale: float

    @property
    def weight(self) -> str:
        """The base tensor this layer updates."""
        return f"{self.module}.weight"


def lora_modules(
    config: AdapterConfig,
    adapter_shapes: Mapping[str, tuple[int, ...]],
    base_shapes: Mapping[str, tuple[int, ...]],
) -> tuple[dict[str, LoraModule], dict[str, str]]:
    """The adapter's LoRA layers and full tensors, checked against the base's tensor shapes.

    Every LoRA module must be a 2-D weight of the base whose shape is B's rows × A's columns
    (transposed for embeddings and ``fan_in_fan_out``) with r = A's rows; every other adapter
    tensor (``modules_to_save``, trained biases) replaces a base tensor of the same shape.

    Returns:
        (base weight name → `LoraModule`, base tensor name → the adapter key replacing it; a
        LoRA layer's weight may be in both).

    Raises:
        SpecError: one line naming the modules the base does not have, or the tensor whose
            shape does not fit.
    """
    found: dict[str, dict[str, str]] = {}
    flags: dict[str, bool] = {}
    full: dict[str, str] = {}
    for key in adapter_shapes:
        split = split_lora_key(key)
        if split is None:
            # peft's save_embedding_layers stores a targeted layer's own weight as
            # ``<module>.base_layer.weight``: it replaces the base weight under the update.
            full[strip_prefix(key).replace(".base_layer.", ".")] = key
            continue
        module, factor, embedding = split
        found.setdefault(module, {})[factor] = key
        flags[module] = embedding or config.fan_in_fan_out
    missing = [m for m in found if f"{m}.weight" not in base_shapes]
    missing += [n for n in full if n not in base_shapes]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise SpecError(
            f"adapter {config.folder}: targets modules the base does not have "
            f"({', '.join(sorted(missing)[:5])}{more})"
        )
    if not found and not full:
        raise SpecError(f"adapter {config.folder}: holds no LoRA tensors")
    for name, key in full.items():
        if tuple(adapter_shapes[key]) != tuple(base_shapes[name]):
            raise SpecError(
                f"adapter {config.folder}: {name} is {list(adapter_shapes[key])} in the adapter "
                f"but {list(base_shapes[name])} in the base"
            )
    layers = {}
    for module, keys in found.items():
        where = f"adapter {config.folder}: {module}"
        if set(keys) != {"A", "B"}:
            raise SpecError(f"{where}: has lora_{min(keys)} but not its pair")
        a, b = adapter_shapes[keys["A"]], adapter_shapes[keys["B"]]
        base_shape = tuple(base_shapes[f"{module}.weight"])
        if len(a) != 2 or len(b) != 2 or len(base_shape) != 2:
            raise NotSupportedError(f"{where}: LoRA on a {len(a)}-D layer is not supported")
        r, scale = config.scale_for(module)
        if a[0] != r or b[1] != r:
            raise SpecError(f"{where}: A is {list(a)} and B {list(b)}, but r = {r}")
        delta = (b[0], a[1])[:: -1 if flags[module] else 1]
        if delta != base_shape:
            raise SpecError(
                f"{where}: ΔW is {list(delta)} but the base weight is {list(base_shape)}"
            )
        layer = LoraModule(module, keys["A"], keys["B"], flags[module], r, scale)
        layers[layer.weight] = layer
    return layers, full


def adapter_shapes(config: AdapterConfig) -> dict[str, tuple[int, ...]]:
    """Adapter tensor key → shape: from the safetensors header (a ``.bin`` via ``weights_only``).

    Raises:
        CheckpointError: the file is truncated, corrupted or not a plain tensor file.
    """
    assert config.weights_file is not None
    if config.weights_file.suffix == ".safetensors":
        from postlens.models.safetensors_header import read_header

        return {k: tuple(v.shape) for k, v in read_header(config.weights_file).items()}
    import torch

    try:  # weights_only: tensors and nothing else are unpickled
        state = torch.load(config.weights_file, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # pickle, zip and mmap errors alike
        raise CheckpointError(f"{config.weights_file}: cannot read safely ({err})") from None
    return {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
