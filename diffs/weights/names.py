"""Map a checkpoint's tensor names to (layer, module kind), across the usual architectures.

Covers GPT-2 (``transformer.h.{i}.attn.c_attn``), GPT-NeoX (``gpt_neox.layers.{i}.attention
.query_key_value``) and Llama-style models (Llama, Qwen, Mistral, Gemma: ``model.layers.{i}
.self_attn.q_proj``). Unknown names map to ``other``; nothing here raises.

Example:
    >>> classify("model.layers.3.mlp.down_proj.weight")
    (3, 'mlp_down')
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

MODULE_KINDS = (
    "attn_q", "attn_k", "attn_v", "attn_qkv", "attn_o",
    "mlp_gate", "mlp_up", "mlp_down", "mlp_in", "mlp_out",
    "norm", "embedding", "unembedding", "other",
)  # fmt: skip

_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")
# Order matters: the first pattern that matches the part after the layer index wins.
_RULES: tuple[tuple[str, str], ...] = (
    (r"(c_attn|query_key_value|qkv_proj|Wqkv)\b", "attn_qkv"),
    (r"(q_proj|query)\b", "attn_q"),
    (r"(k_proj|key)\b", "attn_k"),
    (r"(v_proj|value)\b", "attn_v"),
    (r"(o_proj|attn\.c_proj|attention\.dense|out_proj)\b", "attn_o"),
    (r"gate_proj\b", "mlp_gate"),
    (r"up_proj\b", "mlp_up"),
    (r"down_proj\b", "mlp_down"),
    (r"(c_fc|dense_h_to_4h|fc1|fc_in)\b", "mlp_in"),
    (r"(mlp\.c_proj|dense_4h_to_h|fc2|fc_out)\b", "mlp_out"),
    (r"(norm|ln_\d|ln\b|layernorm)", "norm"),
)
#: The token embedding (position embeddings are "embedding" too, but never an unembedding).
_TOKEN_EMBEDDING = r"(embed_tokens|wte|embed_in|word_embeddings)\b"
_GLOBAL_RULES: tuple[tuple[str, str], ...] = (
    (_TOKEN_EMBEDDING, "embedding"),
    (r"(wpe|position_embeddings)\b", "embedding"),
    (r"(lm_head|embed_out)\b", "unembedding"),
    (r"(norm|ln_f)\b", "norm"),
)


@functools.lru_cache(maxsize=1 << 16)  # called per tensor and per child
def classify(name: str) -> tuple[int | None, str]:
    """The layer index (``None`` outside the blocks) and module kind of a tensor name."""
    match = _LAYER_RE.search(name)
    if match:
        rest = name[match.end() :]
        for pattern, kind in _RULES:
            if re.search(pattern, rest):
                return int(match.group(1)), kind
        return int(match.group(1)), "other"
    for pattern, kind in _GLOBAL_RULES:
        if re.search(pattern, name):
            return None, kind
    return None, "other"


def token_embedding(names: Iterable[str]) -> str | None:
    """The token embedding among `names` (the tensor a tied unembedding is), if any.

    Example:
        >>> token_embedding(["transformer.wpe.weight", "transformer.wte.weight"])
        'transformer.wte.weight'
    """
    return next((n for n in names if re.search(_TOKEN_EMBEDDING, n)), None)
