"""Tiny models built from configs, for tests and examples. Nothing is downloaded.

Example:
    >>> from postlens.testing import save_tiny_model
    >>> path = save_tiny_model("tiny", arch="llama", seed=0)
    >>> (path / "config.json").is_file()
    True
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postlens.errors import ConfigError

if TYPE_CHECKING:
    from postlens.models.types import Model, Tokenizer

TINY_CHARS = string.ascii_lowercase + string.digits + " .,:?+=<>\n"
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")


def build_tokenizer(extra_tokens: tuple[str, ...] = ()) -> Any:
    """A character-level fast tokenizer (one token per character), built in code."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate([*SPECIALS, *extra_tokens, *TINY_CHARS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )


#: The causal-LM families `tiny_model` builds (transformers' ``model_type`` names).
TINY_ARCHS = (
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "phi3",
    "gemma2",
    "gemma3_text",
    "olmo2",
    "gpt2",
    "gpt_neox",
)
_DECODER: dict[str, Any] = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
    tie_word_embeddings=False,
)
# A sliding window shorter than a test sentence, so that both attention kinds are exercised.
_SLIDING: dict[str, Any] = dict(head_dim=8, sliding_window=8, tie_word_embeddings=True)
_FAMILY: dict[str, dict[str, Any]] = {
    "qwen3": dict(head_dim=8),
    "mistral": dict(sliding_window=8),
    "gemma2": _SLIDING,
    "gemma3_text": dict(_SLIDING, layer_types=["sliding_attention", "full_attention"]),
    "gpt_neox": dict(num_key_value_heads=None),
    "gpt2": dict(
        hidden_size=None,
        intermediate_size=None,
        num_hidden_layers=None,
        num_attention_heads=None,
        num_key_value_heads=None,
        max_position_embeddings=None,
        tie_word_embeddings=True,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=128,
    ),
}


def tiny_config(arch: str, vocab_size: int, **overrides: Any) -> Any:
    """The config of a tiny model of family `arch` (2 layers, width 32 unless overridden).

    Example:
        >>> tiny_config("gemma3_text", 64).layer_types
        ['sliding_attention', 'full_attention']
    """
    from transformers import AutoConfig

    if arch not in TINY_ARCHS:
        raise ConfigError(f"unknown tiny architecture {arch!r}; use one of {', '.join(TINY_ARCHS)}")
    kwargs = {**_DECODER, **_FAMILY.get(arch, {}), "vocab_size": vocab_size, **overrides}
    return AutoConfig.for_model(arch, **{k: v for k, v in kwargs.items() if v is not None})


def tiny_model(arch: str = "llama", seed: int = 0, **overrides: Any) -> tuple[Any, Any]:
    """A freshly initialised tiny causal LM and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    tok = build_tokenizer()
    torch.manual_seed(seed)
    vocab_size = overrides.pop("vocab_size", len(tok))  # a larger vocabulary pads the tokenizer's
    model = AutoModelForCausalLM.from_config(tiny_config(arch, vocab_size, **overrides))
    model.eval()
    return model, tok


def save_tiny_model(path: str | Path, arch: str = "llama", seed: int = 0, **overrides: Any) -> Path:
    """Build a tiny model and save it (safetensors + tokenizer) to `path`."""
    model, tok = tiny_model(arch, seed, **overrides)
    return save_model(model, tok, path)


def save_model(model: Model, tokenizer: Tokenizer, path: str | Path) -> Path:
    """Save a model and tokenizer in Hugging Face format."""
    path = Path(path)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


#: Marks "record the base's own location" in `save_tiny_adapter` (``None`` records no base).
_BASE_LOCATION = object()


def save_tiny_adapter(
    path: str | Path,
    base: str = "organism:base",
    r: int = 4,
    alpha: float = 8.0,
    targets: tuple[str, ...] = ("q_proj", "v_proj", "down_proj"),
    seed: int = 0,
    use_rslora: bool = False,
    std: float = 0.05,
    base_name: Any = _BASE_LOCATION,
    **lora_options: Any,
) -> Path:
    """Save a seeded LoRA adapter (peft) on `base`, with random A and B (B nonzero, unlike peft's
    own initialisation, so the update is not zero).

    Args:
        path: the adapter folder to write (``adapter_config.json`` + safetensors).
        base: the base model's spec.
        r: the LoRA rank; `alpha` its lora_alpha; `use_rslora` scales by alpha / sqrt(r).
        targets: module names the adapter targets (peft's ``target_modules``).
        seed: seeds A and B (entries N(0, std²)).
        base_name: the ``base_model_name_or_path`` recorded; by default the base's folder.
        lora_options: more `peft.LoraConfig` fields (``use_dora``, ``rank_pattern``, ...).

    Example:
        >>> folder = save_tiny_adapter("adapter", "organism:base", r=2)
        >>> sorted(p.name for p in folder.iterdir())[:2]
        ['README.md', 'adapter_config.json']
    """
    import json

    import torch
    from peft import LoraConfig, get_peft_model

    from postlens.models.loading import load_hf_model, quiet_transformers
    from postlens.models.specs import resolve_spec

    resolved = resolve_spec(base)
    model = load_hf_model(resolved)
    config = LoraConfig(
        r=r, lora_alpha=alpha,  # type: ignore[arg-type]  # peft takes a float alpha too
        target_modules=list(targets), lora_dropout=0.0,
        use_rslora=use_rslora, **lora_options,
    )  # fmt: skip
    with quiet_transformers():
        adapted = get_peft_model(model, config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in adapted.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * std)
    path = Path(path)
    adapted.save_pretrained(str(path), safe_serialization=True)
    cfg_path = path / "adapter_config.json"
    data = json.loads(cfg_path.read_text())
    data["base_model_name_or_path"] = (
        resolved.location if base_name is _BASE_LOCATION else base_name
    )
    cfg_path.write_text(json.dumps(data, indent=2))
    return path


def planted_shift_model(seed: int = 0) -> tuple[Any, Any, Any, Any]:
    """A tiny GPT-2-style base and a post model whose resid_post at layer 1 moves by a known v.

    The post model's layer-1 MLP output bias adds v (v[3] = 2, v[7] = −1, d_model 32), so
    resid_post at layer 1 shifts by exactly v at every token and nothing before it changes:
    a direction, a shift or an SAE latent aligned with v has a known right answer.

    Returns:
        ``(base, post, tokenizer, v)``.
    """
    import copy

    import torch

    base, tok = tiny_model("gpt2", seed=seed)
    post = copy.deepcopy(base)
    v = torch.zeros(base.config.n_embd)
    v[3], v[7] = 2.0, -1.0
    with torch.no_grad():
        post.transformer.h[1].mlp.c_proj.bias += v
    return base, post, tok, v


def save_tiny_gguf(
    path: str | Path, model: Model | None = None, tokenizer: Tokenizer | None = None,
    qtype: str = "Q8_0", seed: int = 0,
) -> Path:  # fmt: skip
    """Write a tiny Llama model as a GGUF file, the way llama.cpp's converter lays it out.

    Tensors take llama.cpp's names and its row order for the query and key projections (which
    transformers undoes on loading); 2-D tensors whose rows split into 32-entry blocks are
    quantized to `qtype` (``"Q8_0"``, or ``"F32"`` for an exact copy), the rest keep the model's
    dtype (float32; a float64 model writes F64 tensors, which no GGUF reader dequantizes).
    The tokenizer's vocabulary and special ids go into the metadata.

    Args:
        path: the ``.gguf`` file to write (its folder is created).
        model: a Llama model (default: ``tiny_model("llama", seed)``, hidden size 32).
        tokenizer: its tokenizer (default: the tiny character tokenizer).

    Example:
        >>> from postlens.models.gguf import gguf_info
        >>> gguf_info(save_tiny_gguf("tiny/model.gguf")).tensor_types
        {'Q8_0': 16, 'F32': 5}
    """
    import gguf
    import numpy as np
    import torch

    if model is None or tokenizer is None:
        model, tokenizer = tiny_model("llama", seed)
    cfg = model.config
    if cfg.model_type != "llama":
        raise ConfigError(f"save_tiny_gguf writes Llama models, got {cfg.model_type!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = gguf.GGMLQuantizationType[qtype]
    writer = gguf.GGUFWriter(str(path), "llama")
    _gguf_metadata(writer, cfg, tokenizer, kind)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    heads = {"q_proj": cfg.num_attention_heads, "k_proj": cfg.num_key_value_heads}
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu()
        data = (t.float() if t.dtype == torch.bfloat16 else t).numpy()  # float64 stays F64
        module = name.split(".")[-2]
        if module in heads:  # llama.cpp interleaves each head's rotary halves
            n = heads[module]
            data = data.reshape(n, 2, -1, data.shape[-1]).swapaxes(1, 2).reshape(data.shape)
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ConfigError(f"{name}: llama.cpp has no name for this tensor")
        if data.ndim == 2 and data.shape[1] % 32 == 0 and kind != gguf.GGMLQuantizationType.F32:
            packed = gguf.quants.quantize(data.astype(np.float32), kind)
            writer.add_tensor(gguf_name, packed, raw_dtype=kind)
        else:
            writer.add_tensor(gguf_name, np.ascontiguousarray(data))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _gguf_metadata(writer: Any, cfg: Any, tokenizer: Tokenizer, kind: Any) -> None:
    import gguf

    writer.add_name("tiny")
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    writer.add_vocab_size(cfg.vocab_size)
    file_type = "ALL_F32" if kind.name == "F32" else f"MOSTLY_{kind.name}"
    writer.add_file_type(gguf.LlamaFileType[file_type])
    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.__getitem__)
    special = set(tokenizer.all_special_tokens)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens]
    )
    writer.add_token_scores([0.0] * len(tokens))  # transformers derives (no) merges from them
    writer.add_token_merges([])
    for what, value in (("bos", tokenizer.bos_token_id), ("eos", tokenizer.eos_token_id),
                        ("pad", tokenizer.pad_token_id), ("unk", tokenizer.unk_token_id)):  # fmt: skip
        if value is not None:
            getattr(writer, f"add_{what}_token_id")(value)
