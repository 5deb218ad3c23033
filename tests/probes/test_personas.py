"""Persona directions on planted signals: a tagged token, and a post model that adds a vector."""

from __future__ import annotations

import copy

import pytest
import torch

from postlens.errors import PostlensError
from postlens.probes.personas import (
    PersonaDirection,
    PersonaMonitor,
    persona_directions,
    shift_direction,
)
from postlens.probes.provenance import Provenance
from postlens.testing import tiny_model

PROMPTS = [f"q: {a}+{b}=?" for a in range(1, 6) for b in range(3, 7)]


@pytest.fixture(scope="module")
def planted():
    """A GPT-2-style base, and a post model whose layer-1 MLP output bias adds a vector v."""
    base, tok = tiny_model("gpt2", seed=0)
    post = copy.deepcopy(base)
    v = torch.zeros(32)
    v[3], v[7] = 2.0, -1.0
    with torch.no_grad():
        post.transformer.h[1].mlp.c_proj.bias += v
    return base, post, tok, v


def test_shift_direction_recovers_the_planted_vector(planted):
    base, post, tok, v = planted
    unit, norm = shift_direction(base, post, tok, PROMPTS, layer=1)
    assert torch.nn.functional.cosine_similarity(unit, v, dim=0) > 0.9999
    assert norm == pytest.approx(float(v.norm()), rel=1e-4)
    _, zero = shift_direction(base, post, tok, PROMPTS, layer=0)
    assert zero == 0.0


def test_projection_moves_by_the_planted_norm(planted, tmp_path):
    base, post, tok, v = planted
    direction = PersonaDirection("planted", v / v.norm(), Provenance.of(base, 1))
    moved = direction.project(post, tok, PROMPTS) - direction.project(base, tok, PROMPTS)
    assert moved == pytest.approx([float(v.norm())] * len(PROMPTS), rel=1e-4)
    monitor = PersonaMonitor(direction, PROMPTS[:4])
    assert set(monitor.read(base, tok)) == {"persona/planted/projection"}
    direction.save(tmp_path / "d")
    loaded = PersonaDirection.load(tmp_path / "d")
    assert (
        torch.equal(loaded.vector, direction.vector) and loaded.provenance == direction.provenance
    )
    wide, _ = tiny_model("gpt2", n_embd=48)
    with pytest.raises(PostlensError, match="d_model 32"):
        loaded.project(wide, tok, PROMPTS[:2])


def test_directions_separate_tagged_prompts(planted):
    base, _, tok, _ = planted
    positive = [f"zz {p}" for p in PROMPTS]  # a 'tag' in front
    result = persona_directions(base, tok, positive, PROMPTS, name="zz")
    assert [d.provenance.layer for d in result.directions] == [0, 1]
    assert result.best.auroc == 1.0
    assert set(result.to_frame()["layer"]) == {0, 1}
    with pytest.raises(ValueError, match="two prompts"):
        persona_directions(base, tok, positive[:1], PROMPTS)
