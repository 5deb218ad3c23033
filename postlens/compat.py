"""Can two models be compared token by token and layer by layer? Say exactly what differs."""

from __future__ import annotations

from typing import Any

from postlens.errors import IncompatibleModelsError

_SPECIAL = ("bos_token", "eos_token", "unk_token")
_MAX_LISTED = 5


def config_differences(base_cfg: Any, post_cfg: Any) -> list[str]:
    """Differences in architecture family, width, depth, heads and vocabulary size."""
    diffs = []
    checks = {
        "architecture family (model_type)": "model_type",
        "d_model (hidden_size)": "hidden_size",
        "layer count (num_hidden_layers)": "num_hidden_layers",
        "attention heads (num_attention_heads)": "num_attention_heads",
        "vocab_size": "vocab_size",
    }
    for label, attr in checks.items():
        a, b = getattr(base_cfg, attr, None), getattr(post_cfg, attr, None)
        if a != b:
            diffs.append(f"{label}: base {a} vs post {b}")
    return diffs


def tokenizer_differences(base_tok: Any, post_tok: Any) -> list[str]:
    """Differences in vocabulary (token → id, compared entry by entry) and special tokens."""
    diffs = []
    va, vb = base_tok.get_vocab(), post_tok.get_vocab()
    if va != vb:
        only_a = sorted(set(va) - set(vb))
        only_b = sorted(set(vb) - set(va))
        moved = sorted(t for t in set(va) & set(vb) if va[t] != vb[t])
        parts = [f"vocabularies differ (base {len(va)} tokens, post {len(vb)})"]
        if only_a:
            parts.append(f"only in base: {_show(only_a)}")
        if only_b:
            parts.append(f"only in post: {_show(only_b)}")
        if moved:
            parts.append(f"different ids: {_show(moved)}")
        diffs.append("; ".join(parts))
    for name in _SPECIAL:
        a, b = getattr(base_tok, name, None), getattr(post_tok, name, None)
        if a != b:
            diffs.append(f"special token {name}: base {a!r} vs post {b!r}")
    return diffs


def _show(tokens: list[str]) -> str:
    shown = ", ".join(repr(t) for t in tokens[:_MAX_LISTED])
    more = len(tokens) - _MAX_LISTED
    return shown + (f" (+{more} more)" if more > 0 else "")


def check_comparable(
    base_cfg: Any, post_cfg: Any, base_tok: Any, post_tok: Any, names: tuple[str, str]
) -> None:
    """Raise `IncompatibleModelsError` listing every difference, or return quietly.

    Example:
        >>> import postlens as pl
        >>> pair = pl.load("organism:base", rl="organism:rl").pair
        >>> cfg, tok = pair.base.hf_model.config, pair.tokenizer
        >>> check_comparable(cfg, cfg, tok, tok, ("a", "b"))  # quiet: nothing differs
    """
    diffs = config_differences(base_cfg, post_cfg) + tokenizer_differences(base_tok, post_tok)
    if diffs:
        raise IncompatibleModelsError(
            f"{names[0]} and {names[1]} cannot be compared: " + " | ".join(diffs)
        )
