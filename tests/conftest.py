"""Shared fixtures: seeding, and tiny models built from configs (nothing is downloaded)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from postlens.testing import save_tiny_model

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_DISABLED", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
# Shipped with the case studies (Apache-2.0, with its licence and notice).
TINYSTORIES = REPO / "case_studies" / "models" / "tinystories-656k"


@pytest.fixture(autouse=True)
def seed() -> int:
    """Make every test reproducible."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    return 0


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny GPT-2-style and Llama-style checkpoints saved with `save_pretrained`."""
    root = tmp_path_factory.mktemp("tiny")
    return {arch: save_tiny_model(root / arch, arch=arch, seed=0) for arch in ("gpt2", "llama")}


@pytest.fixture
def tinystories_dir() -> Path:
    """The real third-party base (Apache-2.0) shipped in `case_studies/models`."""
    if not (TINYSTORIES / "config.json").is_file():
        pytest.skip(f"third-party checkpoint not present at {TINYSTORIES}")
    return TINYSTORIES
