"""TransformerLens backend: `TransformerBridge` wrapping the loaded Hugging Face model."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from torch import Tensor

from postlens.backends.base import Intervention, RunOutput, TracingBackend, apply_intervention
from postlens.errors import NotSupportedError
from postlens.hooks import forward_order

if TYPE_CHECKING:
    from postlens.models.types import Model, Tokenizer

logger = logging.getLogger(__name__)


class TransformerLensBackend(TracingBackend):
    """Runs a model through TransformerLens's `TransformerBridge`.

    The bridge exposes TransformerLens hook names (``blocks.{i}.hook_resid_post``...) as aliases
    of its own hook points, so postlens's names are used as they are.
    """

    name = "transformer_lens"

    def __init__(self, hf_model: Model, tokenizer: Tokenizer, location: str) -> None:
        super().__init__(hf_model, tokenizer)
        from transformer_lens.model_bridge import TransformerBridge

        # The bridge rebuilds the model's modules in place, renaming some (GPT-NeoX's fused
        # query_key_value becomes qkv); the parameters themselves are kept, so their plain names
        # are taken before it boots.
        self._plain = dict(hf_model.named_parameters())
        # The bridge picks its adapter by the config's class names, which a model built in
        # memory or read from GGUF does not carry.
        if not getattr(hf_model.config, "architectures", None):
            hf_model.config.architectures = [type(hf_model).__name__]
        try:
            self.bridge = TransformerBridge.boot_transformers(
                location,
                hf_model=hf_model,
                tokenizer=tokenizer,
                device=str(self.device),
                dtype=next(hf_model.parameters()).dtype,
            )
        except ValueError as err:
            if "supported architecture" not in str(err):
                raise
            raise NotSupportedError(
                f"TransformerLens's TransformerBridge does not support {type(hf_model).__name__} "
                f"(model_type {hf_model.config.model_type!r}); use backend='nnsight'"
            ) from None

    def plain_parameters(self) -> dict[str, Tensor]:
        return dict(self._plain)

    def _forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None,
        hooks: Sequence[str],
        interventions: Mapping[str, Intervention] | None,
    ) -> RunOutput:
        interventions = dict(interventions or {})
        # Parse every name first, so a bad name fails before any compute.
        forward_order([*hooks, *interventions], self.n_layers)
        captured: dict[str, Tensor] = {}
        fwd_hooks: list[tuple[str | Callable[..., Any], Callable[..., Any]]] = []
        for name, value in interventions.items():
            fwd_hooks.extend(_intervention_hooks(name, value))
        for name in hooks:
            fwd_hooks.append((name, _capturer(name, captured)))
        kwargs: dict[str, Any] = {}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask.to(self.device)
        logits = self.bridge.run_with_hooks(
            input_ids.to(self.device), fwd_hooks=fwd_hooks, return_type="logits", **kwargs
        )
        return RunOutput(logits=logits, activations={n: captured[n] for n in hooks})


def _intervention_hooks(name: str, value: Intervention) -> list[tuple[str, Any]]:
    """Hooks that replace the activation at `name`.

    The bridge's ``hook_resid_mid`` is the input of the second norm; replacing it there would
    change what the MLP reads but not the residual stream itself. So a resid_mid intervention
    is applied on the attention output instead: new attn_out = target - resid_pre, which makes
    the residual equal to the target for everything downstream (as in the nnsight backend).
    """
    if not name.endswith(".hook_resid_mid"):
        return [(name, _replacer(value))]
    block = name.removesuffix(".hook_resid_mid")
    seen: dict[str, Tensor] = {}

    def on_attn_out(attn_out: Tensor, hook: Any) -> Tensor:
        pre = seen["pre"]
        return apply_intervention(value, pre + attn_out) - pre

    return [
        (f"{block}.hook_resid_pre", _capturer("pre", seen)),
        (f"{block}.hook_attn_out", on_attn_out),
    ]


def _replacer(value: Intervention) -> Any:
    def hook(act: Tensor, hook: Any) -> Tensor:
        return apply_intervention(value, act)

    return hook


def _capturer(name: str, store: dict[str, Tensor]) -> Any:
    def hook(act: Tensor, hook: Any) -> None:
        store[name] = act.detach()

    return hook
