"""Fixtures shared by the model-diffing tests."""

from __future__ import annotations

import pytest
import torch

from postlens.testing import save_model, tiny_model


@pytest.fixture(scope="session")
def late_change(tmp_path_factory) -> tuple[str, str]:
    """A 3-layer base, and a post model whose weights differ only from layer 1 on (folders)."""
    root = tmp_path_factory.mktemp("late_change")
    model, tok = tiny_model("llama", seed=0, num_hidden_layers=3)
    base = save_model(model, tok, root / "base")
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for layer in model.model.layers[1:]:
            for p in layer.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return str(base), str(save_model(model, tok, root / "post"))
