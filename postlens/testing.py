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
from typing import Any

from postlens.errors import ConfigError

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


def tiny_config(arch: str, vocab_size: int, **overrides: Any) -> Any:
    """A config of a tiny GPT-2 or Llama model (2 layers, width 32 unless overridden)."""
    from transformers import GPT2Config, LlamaConfig

    if arch == "llama":
        kwargs = dict(
            vocab_size=vocab_size,
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
        return LlamaConfig(**{**kwargs, **overrides})
    if arch == "gpt2":
        kwargs = dict(
            vocab_size=vocab_size,
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=128,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        )
        return GPT2Config(**{**kwargs, **overrides})
    raise ConfigError(f"unknown tiny architecture {arch!r}; use 'llama' or 'gpt2'")


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


def save_model(model: Any, tokenizer: Any, path: str | Path) -> Path:
    """Save a model and tokenizer in Hugging Face format."""
    path = Path(path)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
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
