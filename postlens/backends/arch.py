"""Where the standard hook points live inside Hugging Face architectures.

Two readers need the modules of a causal LM by role:

* the nnsight backend reads and writes module inputs and outputs, so it needs, per architecture
  family, the module that holds each hook point (`ArchLayout`, `layout_for`); a family without
  a layout is refused by name;
* every analysis that reads a model directly (the logit lens, steering hooks, probes) only needs
  the decoder blocks and the final norm, which `decoder_blocks` and `final_norm` find for any
  causal LM transformers loads: from the layout where there is one, else from the model's
  structure. So the TransformerLens backend is never held back by the nnsight table.

Families differ in where a sublayer's output joins the residual stream. Llama, Qwen2/3, Mistral
and Phi3 add the attention module's output directly; Gemma2/3 and OLMo2 pass it through a norm
first (``post_attention_layernorm``), and OLMo2 has no norm before its MLP, so its residual
between attention and MLP is the MLP's own input. GPT-NeoX runs attention and MLP in parallel
from one input (no residual between them).

Example:
    >>> layout_for("gemma3_text").attn_out, layout_for("olmo2").resid_mid
    ('post_attention_layernorm', 'mlp')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor

from postlens.errors import NotSupportedError

if TYPE_CHECKING:
    from postlens.models.types import Model

#: Attribute names a backbone gives its final norm, across the families transformers ships.
_FINAL_NORM_NAMES = ("norm", "final_layernorm", "final_layer_norm", "ln_f", "norm_f")


@dataclass(frozen=True)
class ArchLayout:
    """Module paths (relative to the causal LM) of one architecture family.

    Attributes:
        family: a short family name.
        layers: the list of decoder blocks.
        attn_out: the module inside a block whose output (its first element, for a tuple) is
            what the attention adds to the residual stream (``hook_attn_out``).
        attn_out_proj: the attention output projection inside a block (input = hook_z).
        resid_mid: the module inside a block whose input is the residual stream between
            attention and MLP (``hook_resid_mid``); empty for a parallel residual.
        mlp_out_proj: the MLP down projection inside a block (input = mlp.hook_post).
        final_norm: the final norm (output = ln_final.hook_normalized).
        unembed: the unembedding.
        parallel_residual: attention and MLP read the same input (no resid_mid).
    """

    family: str
    layers: str
    attn_out: str
    attn_out_proj: str
    resid_mid: str
    mlp_out_proj: str
    final_norm: str
    unembed: str = "lm_head"
    parallel_residual: bool = False


_LLAMA = ArchLayout(
    family="llama",
    layers="model.layers",
    attn_out="self_attn",
    attn_out_proj="self_attn.o_proj",
    resid_mid="post_attention_layernorm",
    mlp_out_proj="mlp.down_proj",
    final_norm="model.norm",
)
_GEMMA = replace(
    _LLAMA,
    family="gemma",
    attn_out="post_attention_layernorm",
    resid_mid="pre_feedforward_layernorm",
)
_OLMO2 = replace(_LLAMA, family="olmo2", attn_out="post_attention_layernorm", resid_mid="mlp")
_GPT2 = ArchLayout(
    family="gpt2",
    layers="transformer.h",
    attn_out="attn",
    attn_out_proj="attn.c_proj",
    resid_mid="ln_2",
    mlp_out_proj="mlp.c_proj",
    final_norm="transformer.ln_f",
)
_NEOX = ArchLayout(
    family="gpt_neox",
    layers="gpt_neox.layers",
    attn_out="attention",
    attn_out_proj="attention.dense",
    resid_mid="",
    mlp_out_proj="mlp.dense_4h_to_h",
    final_norm="gpt_neox.final_layer_norm",
    parallel_residual=True,
)

LAYOUTS: dict[str, ArchLayout] = {
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "qwen3": _LLAMA,
    "phi3": _LLAMA,
    "gemma2": _GEMMA,
    "gemma3_text": _GEMMA,
    "olmo2": _OLMO2,
    "gpt2": _GPT2,
    "gpt_neox": _NEOX,
}


def layout_for(model_type: str, *, parallel_residual: bool | None = None) -> ArchLayout:
    """The layout of a `config.model_type`, as the nnsight backend needs it.

    Raises:
        NotSupportedError: the family has no layout yet, naming it and the supported ones.
    """
    try:
        layout = LAYOUTS[model_type]
    except KeyError:
        raise NotSupportedError(
            f"the nnsight backend does not support model_type {model_type!r} yet: postlens has "
            f"no map of where its attention, MLP and norms sit (supported: "
            f"{', '.join(sorted(LAYOUTS))}); use backend='transformer_lens'"
        ) from None
    if parallel_residual is not None and parallel_residual != layout.parallel_residual:
        if parallel_residual:
            return replace(layout, parallel_residual=True, resid_mid="")
        raise NotSupportedError(
            f"model_type {model_type!r} with a sequential residual: postlens has no map of it"
        )
    return layout


def decoder_blocks(model: Model) -> torch.nn.ModuleList:
    """The decoder blocks of any causal LM transformers loads, in order.

    From the family's layout where postlens has one, else the backbone's one module list with
    as many entries as the config has layers.

    Raises:
        NotSupportedError: no such list (named by the model type).

    Example:
        >>> from postlens.testing import tiny_model
        >>> len(decoder_blocks(tiny_model("gemma3_text")[0]))
        2
    """
    cfg = model.config
    layout = LAYOUTS.get(cfg.model_type)
    if layout is not None:
        return cast(torch.nn.ModuleList, model.get_submodule(layout.layers))
    n = getattr(cfg, "num_hidden_layers", None)
    found = [
        m for m in model.base_model.children() if isinstance(m, torch.nn.ModuleList) and len(m) == n
    ]
    if len(found) != 1:
        raise NotSupportedError(
            f"model_type {cfg.model_type!r}: cannot tell its decoder blocks (no single module "
            f"list of {n} blocks in {type(model.base_model).__name__})"
        )
    return found[0]


def final_norm(model: Model) -> torch.nn.Module:
    """The norm applied to the last block's output before the unembedding.

    Raises:
        NotSupportedError: the backbone has none under a known name (named by the model type).
    """
    layout = LAYOUTS.get(model.config.model_type)
    if layout is not None:
        return model.get_submodule(layout.final_norm)
    for name in _FINAL_NORM_NAMES:
        module = getattr(model.base_model, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    raise NotSupportedError(
        f"model_type {model.config.model_type!r}: cannot find its final norm (none of "
        f"{', '.join(_FINAL_NORM_NAMES)} on {type(model.base_model).__name__})"
    )


def logit_lens(model: Model) -> Callable[[Tensor], Tensor]:
    """The model's own readout of a residual: final norm, unembedding, and its logit soft-cap.

    Gemma2's head divides the logits by a cap, takes tanh and multiplies back
    (``final_logit_softcapping``); the lens applies it too, so lens logits at the last layer
    equal the model's.

    Example:
        >>> import torch
        >>> from postlens.testing import tiny_model
        >>> model = tiny_model("gemma2")[0]
        >>> last = model.model.layers[-1]
        >>> seen = []
        >>> handle = last.register_forward_hook(lambda m, a, out: seen.append(out))
        >>> logits = model(torch.tensor([[1, 5, 6]])).logits
        >>> torch.allclose(logit_lens(model)(seen[0]), logits, atol=1e-5)
        True
    """
    norm, head = final_norm(model), model.get_output_embeddings()
    dtype = cast(Tensor, head.weight).dtype
    cap = getattr(model.config, "final_logit_softcapping", None)

    def lens(h: Tensor) -> Tensor:
        logits = head(norm(h.to(dtype)))
        return logits if not cap else torch.tanh(logits / cap) * cap

    return lens
