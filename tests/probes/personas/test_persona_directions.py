"""Persona directions on planted signals: tagged prompts, and a post model that adds a vector."""

from __future__ import annotations

import warnings

import pytest
import torch

from postlens.errors import CheckpointError, PostlensError
from postlens.probes.personas.directions import (
    PersonaDirection,
    mean_activations,
    one_vs_rest_directions,
    persona_directions,
    shift_direction,
)
from postlens.probes.personas.projections import PersonaMonitor, project_models
from postlens.probes.provenance import Provenance
from postlens.probes.training.monitor import Monitor
from postlens.testing import planted_shift_model, tiny_model

PROMPTS = [f"q: {a}+{b}=?" for a in range(1, 6) for b in range(3, 7)]


@pytest.fixture(scope="module")
def planted():
    """A GPT-2-style base, and a post model whose layer-1 MLP output bias adds a vector v, so
    that resid_post at layer 1 (and nothing before it) shifts by exactly v at every token."""
    return planted_shift_model(seed=0)


def test_shift_direction_recovers_the_planted_vector(planted):
    base, post, tok, v = planted
    unit, norm = shift_direction(base, post, tok, PROMPTS, layer=1)
    assert torch.nn.functional.cosine_similarity(unit, v, dim=0) > 0.9999
    assert norm == pytest.approx(float(v.norm()), rel=1e-4)
    _, zero = shift_direction(base, post, tok, PROMPTS, layer=0)
    assert zero == 0.0


def test_directions_of_a_planted_persona_point_along_v(planted):
    """'Persona' texts are read by the post model, 'opposite' texts by the base: at layer 1 the
    mean difference is v; run on one model with a tag instead, the tag separates perfectly."""
    base, post, tok, v = planted
    found = one_vs_rest_directions(
        base,
        tok,
        {"zz": [f"zz {p}" for p in PROMPTS], "plain": PROMPTS, "yy": [f"yy {p}" for p in PROMPTS]},
    )
    assert found.best()["zz"].auroc == 1.0 and found["zz"].best.separation > 1
    assert set(found.to_frame()["persona"]) == {"zz", "plain", "yy"}
    assert found.cosines(1)["zz"]["zz"] == pytest.approx(1.0)
    # Projections: the unit v direction moves by |v| in the post model, not in the base.
    direction = PersonaDirection("planted", v / v.norm(), Provenance.of(base, 1))
    proj = project_models({"planted": direction}, {"base": base, "post": post}, tok, PROMPTS)
    frame = proj.to_frame().set_index("model")
    assert frame.loc["post", "change_vs_base"] == pytest.approx(float(v.norm()), rel=1e-4)
    assert frame.loc["base", "change_vs_base"] == 0.0
    assert "<table" in proj._repr_html_()


def test_a_direction_is_the_mean_difference_over_every_text_whatever_the_split(planted):
    """persona_vectors' definition: mean(h+) − mean(h−) over all texts (float64 by hand); the
    held-out split (its seed) moves only the separation score, never the direction."""
    base, _, tok, _ = planted
    positive = [f"zz {p}" for p in PROMPTS[:9]]
    negative = [f"q {p}" for p in PROMPTS[9:]]
    layer = 1
    pos = mean_activations(base, tok, positive, [layer])[layer].double()
    neg = mean_activations(base, tok, negative, [layer])[layer].double()
    want = pos.mean(0) - neg.mean(0)
    found = {s: persona_directions(base, tok, positive, negative, layers=[layer], seed=s)
             for s in (0, 1, 2)}  # fmt: skip
    for seed, got in found.items():
        d = got.at(layer)
        cos = torch.nn.functional.cosine_similarity(d.vector.double(), want, dim=0)
        assert float(cos) > 1 - 1e-6, seed
        assert d.norm == pytest.approx(float(want.norm()), rel=1e-5)
        assert torch.equal(d.vector, found[0].at(layer).vector)


def test_response_only_averaging_matches_a_manual_mean(planted):
    base, _, tok, _ = planted
    pairs = [(f"zz {p}", " ok done") for p in PROMPTS[:3]]
    got = mean_activations(base, tok, pairs, [0])[0]
    for i, (prompt, response) in enumerate(pairs):
        ids = tok(prompt + response, return_tensors="pt").input_ids
        n_prompt = len(tok(prompt).input_ids)
        hidden = base(ids, output_hidden_states=True).hidden_states[1][0]  # after block 0
        assert torch.allclose(got[i], hidden[n_prompt:].mean(0), atol=1e-5)
    with pytest.raises(ValueError, match="empty response"):
        mean_activations(base, tok, [("q: 1+2=?", "")], [1])


def test_save_load_monitor_and_shape_check(planted, tmp_path):
    base, post, tok, v = planted
    direction = persona_directions(
        base, tok, [f"zz {p}" for p in PROMPTS], PROMPTS, name="zz", layers=[1]
    ).best
    direction.save(tmp_path / "d")
    loaded = PersonaDirection.load(tmp_path / "d")
    assert (
        torch.equal(loaded.vector, direction.vector) and loaded.provenance == direction.provenance
    )
    assert loaded.auroc == direction.auroc and loaded.separation == direction.separation
    monitor = PersonaMonitor(loaded, PROMPTS[:4])
    assert isinstance(monitor, Monitor)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # applying it to the post model is the point: no warning
        reading = monitor.read(post, tok)
    assert set(reading) == {"persona/zz/projection"}
    assert monitor.read(post, tok, batch=PROMPTS[4:6])["persona/zz/projection"] != pytest.approx(
        reading["persona/zz/projection"]
    )
    wide, _ = tiny_model("gpt2", n_embd=48)
    with pytest.raises(PostlensError, match="d_model 48"):
        loaded.project(wide, tok, PROMPTS[:2])
    with pytest.raises(CheckpointError, match="not a readable"):
        PersonaDirection.load(tmp_path / "missing")


def test_bad_inputs_are_value_errors(planted):
    base, _, tok, _ = planted
    with pytest.raises(ValueError, match="two texts"):
        persona_directions(base, tok, PROMPTS[:1], PROMPTS)
    with pytest.raises(ValueError, match="layers must be within"):
        persona_directions(base, tok, PROMPTS, PROMPTS, layers=[5])
    with pytest.raises(ValueError, match="at least two persona sets"):
        one_vs_rest_directions(base, tok, {"a": PROMPTS})
    with pytest.raises(ValueError, match="test_fraction"):
        persona_directions(base, tok, PROMPTS, PROMPTS, test_fraction=1.0)
    with pytest.raises(ValueError, match="at least one prompt"):
        PersonaMonitor(PersonaDirection("x", torch.ones(32), Provenance.of(base, 0)), [])
