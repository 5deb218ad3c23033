"""Where the real-LM organism's models live in a cache folder.

Example:
    >>> from pathlib import Path
    >>> model_dir(Path("cache"), "rl").name
    'smol-rl'
"""

from __future__ import annotations

from pathlib import Path

NAME = "smol"
MODELS = ("base", "sft", "rl", "lora")


def model_dir(cache: Path, model: str) -> Path:
    """Where model `model` of the organism lives in `cache`."""
    return cache / f"{NAME}-{model}"
