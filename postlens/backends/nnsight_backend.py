"""nnsight backend: the Hugging Face model wrapped in `nnsight.TransformersModel`.

Hook points are read and written as module inputs and outputs (see `postlens.backends.arch`).
Remote execution (NDIF) passes through with ``remote=True``; it needs an API key and a model
that NDIF hosts, and cannot be exercised on an offline machine.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Int
from torch import Tensor

from postlens.backends.arch import ArchLayout, layout_for
from postlens.backends.base import (
    Backend,
    Intervention,
    RunOutput,
    TracingBackend,
    apply_intervention,
)
from postlens.errors import PostlensError
from postlens.hooks import HookPoint, forward_order

if TYPE_CHECKING:
    from postlens.models.types import Model, Tokenizer


def ndif_api_key() -> str | None:
    """The NDIF API key from the environment or nnsight's config, if any."""
    key = os.environ.get("NDIF_API_KEY")
    if key:
        return key
    try:
        from nnsight import CONFIG

        return CONFIG.API.APIKEY or None
    except (ImportError, AttributeError):
        return None


class NNsightBackend(TracingBackend):
    """Runs a model through nnsight's tracing.

    Args:
        hf_model: the loaded causal LM.
        tokenizer: its tokenizer.
        remote: run traces on NDIF (nnsight's remote execution) instead of locally.
    """

    name = "nnsight"

    def __init__(self, hf_model: Model, tokenizer: Tokenizer, remote: bool = False) -> None:
        super().__init__(hf_model, tokenizer)
        from nnsight import TransformersModel

        if remote and not ndif_api_key():
            raise PostlensError(
                "nnsight remote execution needs NDIF credentials: set NDIF_API_KEY or call "
                "nnsight.CONFIG.set_default_api_key(...)"
            )
        cfg = hf_model.config
        self.layout: ArchLayout = layout_for(
            cfg.model_type, parallel_residual=getattr(cfg, "use_parallel_residual", None)
        )
        self.n_heads: int = cfg.num_attention_heads
        self.remote = remote
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model = TransformersModel(hf_model, task="text-generation", tokenizer=tokenizer)

    def final_hidden(
        self,
        input_ids: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"] | None = None,
    ) -> Tensor | None:
        if self.remote:  # the weights live on NDIF, not here
            return None
        return super().final_hidden(input_ids, attention_mask)

    def _module(self, path: str, layer: int | None = None) -> Any:
        envoy = self.model
        if layer is not None:
            envoy = _walk(envoy, self.layout.layers)[layer]
        return _walk(envoy, path)

    def run_with_grad(
        self,
        input_ids: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        hooks: Sequence[str] = (),
        interventions: Mapping[str, Intervention] | None = None,
    ) -> RunOutput:
        if self.remote:  # the graph would live on NDIF; nothing here to differentiate
            return Backend.run_with_grad(self, input_ids, attention_mask, hooks, interventions)
        return super().run_with_grad(input_ids, attention_mask, hooks, interventions)

    def _forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None,
        hooks: Sequence[str],
        interventions: Mapping[str, Intervention] | None,
    ) -> RunOutput:
        interventions = dict(interventions or {})
        points = forward_order([*hooks, *interventions], self.n_layers)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        captured: dict[str, Any] = {}
        with self.model.trace(
            input_ids=input_ids.to(self.device),
            attention_mask=attention_mask.to(self.device),
            remote=self.remote,
        ):
            for point in points:
                self._visit(point, interventions.get(point.name), point.name in hooks, captured)
            # The model's own output: a head that soft-caps (Gemma2) does so after lm_head.
            logits = self.model.output.logits.save()
        return RunOutput(logits=logits, activations={n: _value(captured[n]) for n in hooks})

    def _visit(
        self, point: HookPoint, value: Intervention | None, capture: bool, out: dict[str, Any]
    ) -> None:
        """Replace and/or capture one hook point inside an open trace."""
        site, layer, lay = point.site, point.layer, self.layout
        if site == "hook_resid_pre":
            block = self._module("", layer)
            if value is not None:
                block.input = apply_intervention(value, block.input)
            if capture:
                out[point.name] = block.input.save()
        elif site == "attn.hook_z":
            proj = self._module(lay.attn_out_proj, layer)
            flat = proj.input
            if value is not None:
                z = apply_intervention(value, _split_heads(flat, self.n_heads))
                proj.input = z.reshape(flat.shape)
            if capture:
                out[point.name] = _split_heads(proj.input, self.n_heads).save()  # type: ignore[attr-defined]  # an nnsight proxy
        elif site == "hook_resid_mid":
            self._visit_resid_mid(point, value, capture, out)
        elif site == "mlp.hook_post":
            proj = self._module(lay.mlp_out_proj, layer)
            if value is not None:
                proj.input = apply_intervention(value, proj.input)
            if capture:
                out[point.name] = proj.input.save()
        elif site == "hook_resid_post":
            block = self._module("", layer)
            if value is not None:
                _set_first_output(block, apply_intervention(value, _first(block.output)))
            if capture:
                out[point.name] = _first(block.output).save()
        else:  # ln_final.hook_normalized
            norm = self._module(lay.final_norm)
            if value is not None:
                norm.output = apply_intervention(value, norm.output)
            if capture:
                out[point.name] = norm.output.save()

    def _visit_resid_mid(
        self, point: HookPoint, value: Intervention | None, capture: bool, out: dict[str, Any]
    ) -> None:
        if self.layout.parallel_residual:
            raise PostlensError(
                f"{point.name}: this model uses a parallel residual (attention and MLP read the "
                "same input), so it has no resid_mid"
            )
        block = self._module("", point.layer)
        if value is not None:
            # Writing the norm's input would not change the residual itself, so the attention
            # output is set to (target - resid_pre): the residual then equals the target.
            pre = block.input
            attn = self._module(self.layout.attn_out, point.layer)
            attn_out = _first(attn.output)
            _set_first_output(attn, apply_intervention(value, pre + attn_out) - pre)
        if capture:
            out[point.name] = self._module(self.layout.resid_mid, point.layer).input.save()


def _walk(envoy: Any, path: str) -> Any:
    for part in filter(None, path.split(".")):
        envoy = envoy[int(part)] if part.isdigit() else getattr(envoy, part)
    return envoy


def _first(output: Any) -> Any:
    # transformers 5 decoder layers return a plain tensor; attention modules return a tuple.
    return output[0] if isinstance(output, tuple) else output


def _set_first_output(module: Any, new: Tensor) -> None:
    output = module.output
    if isinstance(output, tuple):
        module.output = (new, *output[1:])
    else:
        module.output = new


def _split_heads(flat: Tensor, n_heads: int) -> Tensor:
    return flat.reshape(*flat.shape[:-1], n_heads, flat.shape[-1] // n_heads)


def _value(saved: Any) -> Tensor:
    return saved.value if hasattr(saved, "value") else saved
