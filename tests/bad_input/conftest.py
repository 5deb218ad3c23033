"""Fixtures of the bad-input suite (the broken inputs themselves are in `bad_inputs`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_inputs import BROKEN_CHECKPOINTS, break_checkpoint


@pytest.fixture(scope="session")
def broken_dirs(tiny_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """One folder per entry of `BROKEN_CHECKPOINTS`, each broken from the tiny llama."""
    root = tmp_path_factory.mktemp("broken")
    return {
        name: break_checkpoint(tiny_dirs["llama"], root / name, edit)
        for name, (edit, _) in BROKEN_CHECKPOINTS.items()
    }
