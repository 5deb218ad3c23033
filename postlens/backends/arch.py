"""Where the standard hook points live inside Hugging Face architectures.

The nnsight backend reads and writes module inputs and outputs, so it needs to know, per
architecture family, which module holds each hook point. Families share layouts: Qwen2/3 and
Mistral are laid out like Llama.
"""

from __future__ import annotations

from dataclasses import dataclass

from postlens.errors import PostlensError


@dataclass(frozen=True)
class ArchLayout:
    """Module paths (relative to the causal LM) of one architecture family.

    Attributes:
        family: a short family name.
        layers: the list of decoder blocks.
        attn: the attention module inside a block (its output[0] is added to the residual).
        attn_out_proj: the attention output projection inside a block (input = hook_z).
        ln2: the norm before the MLP inside a block (input = resid_mid).
        mlp_out_proj: the MLP down projection inside a block (input = mlp.hook_post).
        final_norm: the final norm (output = ln_final.hook_normalized).
        unembed: the unembedding (output = logits).
        parallel_residual: attention and MLP read the same input (no resid_mid).
    """

    family: str
    layers: str
    attn: str
    attn_out_proj: str
    ln2: str
    mlp_out_proj: str
    final_norm: str
    unembed: str
    parallel_residual: bool = False


_LLAMA = ArchLayout(
    family="llama",
    layers="model.layers",
    attn="self_attn",
    attn_out_proj="self_attn.o_proj",
    ln2="post_attention_layernorm",
    mlp_out_proj="mlp.down_proj",
    final_norm="model.norm",
    unembed="lm_head",
)
_GPT2 = ArchLayout(
    family="gpt2",
    layers="transformer.h",
    attn="attn",
    attn_out_proj="attn.c_proj",
    ln2="ln_2",
    mlp_out_proj="mlp.c_proj",
    final_norm="transformer.ln_f",
    unembed="lm_head",
)
_NEOX = ArchLayout(
    family="gpt_neox",
    layers="gpt_neox.layers",
    attn="attention",
    attn_out_proj="attention.dense",
    ln2="post_attention_layernorm",
    mlp_out_proj="mlp.dense_4h_to_h",
    final_norm="gpt_neox.final_layer_norm",
    unembed="embed_out",
    parallel_residual=True,
)

LAYOUTS: dict[str, ArchLayout] = {
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "qwen3": _LLAMA,
    "gpt2": _GPT2,
    "gpt_neox": _NEOX,
}


def layout_for(model_type: str, *, parallel_residual: bool | None = None) -> ArchLayout:
    """The layout of a `config.model_type`.

    Raises:
        PostlensError: the architecture is not supported by the nnsight backend yet.
    """
    try:
        layout = LAYOUTS[model_type]
    except KeyError:
        raise PostlensError(
            f"the nnsight backend does not support model_type {model_type!r} yet "
            f"(supported: {', '.join(sorted(LAYOUTS))}); use backend='transformer_lens'"
        ) from None
    if parallel_residual is not None and parallel_residual != layout.parallel_residual:
        from dataclasses import replace

        layout = replace(layout, parallel_residual=parallel_residual)
    return layout
