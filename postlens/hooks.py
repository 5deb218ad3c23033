"""Stable hook names shared by every backend.

postlens addresses activations with TransformerLens names, whatever the backend:

* ``blocks.{i}.hook_resid_pre`` / ``hook_resid_mid`` / ``hook_resid_post``: the residual stream
  before block ``i``, between its attention and MLP, and after it;
* ``blocks.{i}.attn.hook_z``: attention heads' outputs before the output projection,
  shaped ``[batch, pos, n_heads, d_head]``;
* ``blocks.{i}.mlp.hook_post``: the MLP's hidden activation, the input of its down projection;
* ``ln_final.hook_normalized``: the final norm's output, the input of the unembedding.

Example:
    >>> parse_hook("blocks.3.hook_resid_post", n_layers=4)
    HookPoint(name='blocks.3.hook_resid_post', layer=3, site='hook_resid_post')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from postlens.errors import PostlensError

BLOCK_SITES = (
    "hook_resid_pre",
    "hook_resid_mid",
    "hook_resid_post",
    "attn.hook_z",
    "mlp.hook_post",
)
FINAL_NORM = "ln_final.hook_normalized"
_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(" + "|".join(re.escape(s) for s in BLOCK_SITES) + r")$")


class HookNameError(PostlensError, ValueError):
    """A hook name that postlens does not know, or a layer out of range."""


@dataclass(frozen=True)
class HookPoint:
    """A parsed hook name.

    Attributes:
        name: the full name, e.g. ``blocks.2.hook_resid_post``.
        layer: the block index, or ``None`` for ``ln_final.hook_normalized``.
        site: the part after the block index (or the full name for the final norm).
    """

    name: str
    layer: int | None
    site: str


def parse_hook(name: str, n_layers: int) -> HookPoint:
    """Parse and validate a hook name for a model with ``n_layers`` blocks.

    Raises:
        HookNameError: unknown name or layer out of range, with the valid forms.
    """
    if name == FINAL_NORM:
        return HookPoint(name, None, name)
    match = _BLOCK_RE.match(name)
    if match is None:
        raise HookNameError(
            f"unknown hook {name!r}; postlens knows blocks.{{i}}.<"
            + "|".join(BLOCK_SITES)
            + f"> and {FINAL_NORM}"
        )
    layer = int(match.group(1))
    if layer >= n_layers:
        raise HookNameError(f"hook {name!r}: layer {layer} out of range (model has {n_layers})")
    return HookPoint(name, layer, match.group(2))


def resid_post(layer: int) -> str:
    """Name of the residual stream after block ``layer``."""
    return f"blocks.{layer}.hook_resid_post"


def hook_names(n_layers: int) -> list[str]:
    """Every hook name postlens supports for a model with ``n_layers`` blocks, in forward order."""
    names = [f"blocks.{i}.{site}" for i in range(n_layers) for site in _FORWARD_ORDER]
    return [*names, FINAL_NORM]


# Order of the sites inside one block during the forward pass (nnsight must read them in order).
_FORWARD_ORDER = (
    "hook_resid_pre",
    "attn.hook_z",
    "hook_resid_mid",
    "mlp.hook_post",
    "hook_resid_post",
)


def forward_order(names: list[str], n_layers: int) -> list[HookPoint]:
    """Parse names and sort them in the order the forward pass reaches them."""
    points = {parse_hook(n, n_layers) for n in names}

    def key(p: HookPoint) -> tuple[int, int]:
        if p.layer is None:
            return (n_layers, 0)
        return (p.layer, _FORWARD_ORDER.index(p.site))

    return sorted(points, key=key)
