"""postlens: what did post-training (SFT or RL) change inside a model?

Heavy dependencies (torch, transformers, the backends) are imported lazily so that
``import postlens`` stays fast and has no side effects.

Example:
    >>> import postlens
    >>> pair = postlens.ModelPair.load("organism:base", "organism:rl")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from postlens.pair import ModelPair

__all__ = ["ModelPair", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "ModelPair":
        from postlens.pair import ModelPair

        return ModelPair
    raise AttributeError(f"module 'postlens' has no attribute {name!r}")
