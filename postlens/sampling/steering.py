"""Steering during generation: add α·v to (or ablate a direction from) the residual stream.

`steering(backend, vector, layer, alpha)` is a context manager: while it is open, every forward
pass of the backend's Hugging Face model (sampling with `postlens.sampling.generation.sample_completions`,
``backend.generate``, ``backend.run``) has ``h ← h + α·v`` applied to the residual stream after
block `layer` (``blocks.{layer}.hook_resid_post``), or before it with ``site="hook_resid_pre"``.
``ablate=True`` removes the direction instead: ``h ← h − (h·v̂) v̂``.

How it is installed, and why it serves both backends: sampling goes through the wrapped model's
own ``generate`` on either backend, so the intervention is a plain torch forward hook on the
decoder block. TransformerBridge replaces each block of the Hugging Face model by a
``BlockBridge`` wrapping the original layer (``.original_component``); the hook goes on that
original layer, which both backends (and plain transformers) call with the same arguments, so
the steered output is the same whatever the backend (checked in ``tests/diffs/causal/test_steering.py``
against a hand-written transformers hook).

Where: ``where="all"`` steers every position, prompt included; ``"generated"`` only the
positions whose next-token distribution is sampled (the prompt's last column and every
generated token); ``steps=(0, 2)`` only those generation steps (0 produces the first new token).
Columns are counted from the KV cache's length, and the prompt's width is taken from the
``generate`` call (wrapped while the block is open), so they hold with caching and without it:
without a cache each step re-runs the whole sequence, and the same columns are steered.

Example:
    >>> import torch, postlens as pl
    >>> pair = pl.load("organism:base", rl="organism:rl").pair
    >>> batch = pair.tokenize(["Q: 1+2=?\\n"])
    >>> plain = pair.run("base", batch).logits
    >>> with steering(pair.base, torch.ones(128), layer=1, alpha=0.0):
    ...     same = pair.run("base", batch).logits
    >>> with steering(pair.base, torch.ones(128), layer=1, alpha=4.0):
    ...     moved = pair.run("base", batch).logits
    >>> torch.equal(plain, same), torch.equal(plain, moved)
    (True, False)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
from jaxtyping import Float
from torch import Tensor

from postlens.errors import ConfigError

if TYPE_CHECKING:
    from postlens.models.types import Model

WHERE = ("all", "generated")
SITES = ("hook_resid_post", "hook_resid_pre")


@dataclass(frozen=True)
class SteerSpec:
    """One steering intervention.

    Attributes:
        layer: the block whose residual stream is steered.
        alpha: the multiple of the vector added (ignored when ablating).
        site: ``hook_resid_post`` (the block's output) or ``hook_resid_pre`` (its input).
        where: ``"all"`` or ``"generated"`` positions (see the module docstring).
        steps: only these generation steps (overrides `where`); empty: no restriction.
        ablate: project the direction out instead of adding it.
    """

    layer: int
    alpha: float = 1.0
    site: str = "hook_resid_post"
    where: str = "all"
    steps: tuple[int, ...] = ()
    ablate: bool = False

    def __post_init__(self) -> None:
        if self.layer < 0:
            raise ConfigError(f"layer must be >= 0, got {self.layer}")
        if self.site not in SITES:
            raise ConfigError(f"site must be one of {', '.join(SITES)}, got {self.site!r}")
        if self.where not in WHERE:
            raise ConfigError(f"where must be one of {', '.join(WHERE)}, got {self.where!r}")
        if any(s < 0 for s in self.steps):
            raise ConfigError(f"steps must be >= 0, got {list(self.steps)}")


def decoder_layer(hf_model: Model, layer: int) -> torch.nn.Module:
    """The original decoder block `layer` of a causal LM (unwrapping TransformerBridge's).

    Example:
        >>> import postlens as pl
        >>> base = pl.load("organism:base", rl="organism:rl").base
        >>> type(decoder_layer(base.hf_model, 0)).__name__
        'LlamaDecoderLayer'
    """
    from postlens.backends.arch import decoder_blocks

    layers = decoder_blocks(hf_model)
    if not 0 <= layer < len(layers):
        raise ConfigError(f"layer {layer} out of range (the model has {len(layers)} blocks)")
    module: Any = layers[layer]
    while getattr(module, "original_component", None) is not None:  # TransformerBridge's wrap
        module = module.original_component
    return cast(torch.nn.Module, module)


class _Steerer:
    """The hook's state: the column offset of the current forward and the prompt width."""

    def __init__(self, vector: Tensor, spec: SteerSpec) -> None:
        self.spec = spec
        self.vector = vector
        self.offset = 0
        self.width: int | None = None  # columns of the prompt in the current generate call
        self.fixed_width: int | None = None
        self.generate_width: int | None = None  # set by the wrapped ``generate``

    def before(self, module: Any, args: tuple, kwargs: dict) -> Any:
        cache = kwargs.get("past_key_values")
        self.offset = int(cache.get_seq_length(self.spec.layer)) if cache is not None else 0
        hidden = args[0] if args else kwargs["hidden_states"]
        if self.offset == 0:  # a new prompt (or, without a cache, a step re-run from column 0)
            self.width = self.fixed_width or self.generate_width or hidden.shape[1]
        if self.spec.site == "hook_resid_pre":
            new = self.apply(hidden)
            return ((new, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": new})
        return None

    def after(self, module: Any, args: tuple, output: Any) -> Any:
        if self.spec.site != "hook_resid_post":
            return None
        if isinstance(output, tuple):
            return (self.apply(output[0]), *output[1:])
        return self.apply(output)

    def mask(self, n_pos: int, device: torch.device) -> Tensor:
        """Which columns of this forward are steered, as a ``[pos, 1]`` float mask."""
        cols = torch.arange(self.offset, self.offset + n_pos, device=device)
        start = (self.width or 1) - 1
        if self.spec.steps:
            keep = torch.isin(cols - start, torch.tensor(self.spec.steps, device=device))
        elif self.spec.where == "generated":
            keep = cols >= start
        else:
            keep = torch.ones_like(cols, dtype=torch.bool)
        return keep.unsqueeze(-1)

    def apply(self, hidden: Tensor) -> Tensor:
        v = self.vector.to(device=hidden.device, dtype=hidden.dtype)
        keep = self.mask(hidden.shape[1], hidden.device).to(hidden.dtype)
        if self.spec.ablate:
            unit = v / v.norm().clamp_min(1e-12)
            return hidden - keep * (hidden @ unit).unsqueeze(-1) * unit
        return hidden + keep * (self.spec.alpha * v)


@contextmanager
def steering(
    backend: Any,
    vector: Float[Tensor, " d_model"],
    layer: int,
    alpha: float = 1.0,
    *,
    site: str = "hook_resid_post",
    where: str = "all",
    steps: tuple[int, ...] = (),
    ablate: bool = False,
) -> Iterator[_Steerer]:
    """Steer every forward pass of `backend` (or a Hugging Face model) while the block is open.

    Args:
        backend: a postlens backend (its ``hf_model`` is hooked) or a causal LM itself.
        vector: the direction ``v``.
        layer, alpha, site, where, steps, ablate: see `SteerSpec`.

    Yields:
        The hook's state; set ``.fixed_width`` to the prompt width when scoring full
        sequences in one forward pass with ``where="generated"`` or `steps`.
    """
    spec = SteerSpec(layer, alpha, site, where, tuple(steps), ablate)
    hf_model = getattr(backend, "hf_model", backend)
    if vector.shape != (hf_model.config.hidden_size,):
        raise ConfigError(
            f"steering vector has shape {tuple(vector.shape)}, the model's residual stream "
            f"has {hf_model.config.hidden_size}"
        )
    module = decoder_layer(hf_model, layer)
    state = _Steerer(vector.detach(), spec)
    handles = [
        module.register_forward_pre_hook(state.before, with_kwargs=True),
        module.register_forward_hook(state.after),
    ]
    shadowed = hf_model.__dict__.get("generate")
    hf_model.generate = _recording_width(hf_model.generate, state)
    try:
        yield state
    finally:
        for handle in handles:
            handle.remove()
        if shadowed is None:
            del hf_model.generate
        else:
            hf_model.generate = shadowed


def _recording_width(generate: Any, state: _Steerer) -> Any:
    """`generate` that tells `state` its prompt's width for the duration of the call."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        ids = kwargs.get("input_ids", args[0] if args else None)
        state.generate_width = int(ids.shape[-1]) if isinstance(ids, Tensor) else None
        try:
            return generate(*args, **kwargs)
        finally:
            state.generate_width = None

    return wrapped
