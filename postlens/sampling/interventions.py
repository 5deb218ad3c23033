"""Interventions at named hooks during generation: ``h ← f(h)`` at any postlens hook name.

`intervening(model, {"blocks.1.hook_resid_post": f, ...})` is a context manager: while it is
open, every forward pass of the model (each step of ``generate``, with or without a KV cache,
and plain forwards) has the activation at each named hook replaced by ``f(activation)``. The
names are the ones `postlens.hooks` defines and ``ModelPair.run(..., interventions=...)`` takes,
so an intervention tried on a forward pass samples unchanged.

Why torch hooks on the Hugging Face modules rather than each backend's own tracing: sampling
runs transformers' ``generate`` on either backend, where a trace would cover one forward only;
the modules are found through the family's layout (`postlens.backends.arch`), unwrapping
TransformerBridge's blocks, so both backends (and a plain causal LM) are hooked alike.

During generation the function sees only the positions of the current step (one column per
sequence with a KV cache), so it must act per position (``h + v``, a projection, a clamp);
a fixed replacement tensor has no meaning there and is refused.

Example:
    >>> import torch, postlens as pl
    >>> pair = pl.load("organism:base", rl="organism:rl").pair
    >>> batch = pair.tokenize(["Q: 1+2=?"])
    >>> shift = {"blocks.1.hook_resid_post": lambda h: h + 3.0}
    >>> with intervening(pair.base, shift):
    ...     moved = pair.run("base", batch).logits
    >>> same = pair.run("base", batch, interventions=shift).logits
    >>> torch.allclose(moved, same, atol=1e-5)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from torch import Tensor

from postlens.errors import ConfigError, PostlensError
from postlens.hooks import HookPoint, forward_order
from postlens.sampling.steering import decoder_layer

Fn = Callable[[Tensor], Tensor]


@contextmanager
def intervening(model: Any, interventions: Mapping[str, Fn]) -> Iterator[None]:
    """Apply `interventions` (hook name → function of the activation) to every forward pass of
    `model` (a postlens backend or a causal LM) while the block is open.

    Raises:
        HookNameError: an unknown hook name or a layer out of range.
        ConfigError: an intervention that is not a function.
    """
    from postlens.backends.arch import layout_for

    hf_model = getattr(model, "hf_model", model)
    cfg = hf_model.config
    for name, fn in interventions.items():
        if not callable(fn):
            raise ConfigError(
                f"intervention at {name!r}: generation needs a function of the activation "
                "(each step sees only its own positions), not a fixed tensor"
            )
    points = forward_order(list(interventions), cfg.num_hidden_layers)
    layout = layout_for(
        cfg.model_type, parallel_residual=getattr(cfg, "use_parallel_residual", None)
    )
    handles: list[Any] = []
    try:
        for point in points:
            handles += _install(hf_model, layout, point, interventions[point.name])
        yield
    finally:
        for handle in handles:
            handle.remove()


def _install(hf_model: Any, layout: Any, point: HookPoint, fn: Fn) -> list[Any]:
    """The torch hooks that apply `fn` at one hook point."""
    from postlens.backends.arch import final_norm

    if point.layer is None:  # ln_final.hook_normalized: the final norm's output
        return [final_norm(hf_model).register_forward_hook(_on_output(fn))]
    block = decoder_layer(hf_model, point.layer)
    site = point.site
    if site == "hook_resid_pre":
        return [block.register_forward_pre_hook(_on_input(fn), with_kwargs=True)]
    if site == "hook_resid_post":
        return [block.register_forward_hook(_on_output(fn))]
    if site == "mlp.hook_post":
        proj = block.get_submodule(layout.mlp_out_proj)
        return [proj.register_forward_pre_hook(_on_input(fn), with_kwargs=True)]
    if site == "attn.hook_z":
        heads = hf_model.config.num_attention_heads
        proj = block.get_submodule(layout.attn_out_proj)
        return [proj.register_forward_pre_hook(_on_input(_per_head(fn, heads)), with_kwargs=True)]
    return _resid_mid(block, layout, point, fn)  # hook_resid_mid


def _resid_mid(block: Any, layout: Any, point: HookPoint, fn: Fn) -> list[Any]:
    """resid_mid = resid_pre + attention output: the attention output is set to
    f(resid_pre + attn) − resid_pre, so that the residual between the two sublayers is f(·)."""
    if layout.parallel_residual or not layout.resid_mid:
        raise PostlensError(
            f"{point.name}: this model uses a parallel residual (attention and MLP read the "
            "same input), so it has no resid_mid"
        )
    seen: dict[str, Tensor] = {}

    def remember(module: Any, args: tuple, kwargs: dict) -> None:
        seen["pre"] = args[0] if args else kwargs["hidden_states"]

    def shift(attn_out: Tensor) -> Tensor:
        pre = seen["pre"]
        return fn(pre + attn_out) - pre

    attn = block.get_submodule(layout.attn_out)
    return [
        block.register_forward_pre_hook(remember, with_kwargs=True),
        attn.register_forward_hook(_on_output(shift)),
    ]


def _checked(fn: Fn, current: Tensor) -> Tensor:
    new = fn(current)
    if not isinstance(new, Tensor) or new.shape != current.shape:
        shape = tuple(new.shape) if isinstance(new, Tensor) else type(new).__name__
        raise ConfigError(
            f"intervention returned {shape}, the activation has {tuple(current.shape)}"
        )
    return new.to(dtype=current.dtype, device=current.device)


def _on_input(fn: Fn) -> Callable[..., Any]:
    def hook(module: Any, args: tuple, kwargs: dict) -> Any:
        if args:
            return ((_checked(fn, args[0]), *args[1:]), kwargs)
        return (args, {**kwargs, "hidden_states": _checked(fn, kwargs["hidden_states"])})

    return hook


def _on_output(fn: Fn) -> Callable[..., Any]:
    def hook(module: Any, args: tuple, output: Any) -> Any:
        if isinstance(output, tuple):
            return (_checked(fn, output[0]), *output[1:])
        return _checked(fn, output)

    return hook


def _per_head(fn: Fn, n_heads: int) -> Fn:
    """`fn` on ``[batch, pos, head, d_head]`` for an input that arrives flat."""

    def flat(x: Tensor) -> Tensor:
        return _checked(fn, x.reshape(*x.shape[:-1], n_heads, x.shape[-1] // n_heads)).reshape(
            x.shape
        )

    return flat
