"""`analyse_personas` on a planted child: projections and shifts against an independent mean."""

from __future__ import annotations

import copy

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata

from postlens.diffs.personas.analysis import PersonaConfig, PersonaInputs, analyse_personas
from postlens.pair import ModelPair
from postlens.probes.personas.directions import shift_direction
from postlens.testing import planted_shift_model

QUESTIONS = [f" q: {a}+{b}=?" for a in range(1, 7) for b in range(2, 6)]
PROMPTS = [("", f"q: {a}*{b}=?") for a in range(1, 5) for b in range(1, 5)]


@pytest.fixture(scope="module")
def found():
    """'rl' adds v after block 1 (MLP output bias), so its resid_post there moves by exactly v;
    'sft' is an identical copy of the base."""
    base, post, tok, v = planted_shift_model(seed=0)
    pairs = {
        name: ModelPair.from_models(base, child, tok, backend="nnsight")
        for name, child in (("sft", copy.deepcopy(base)), ("rl", post))
    }
    sets = {tag: [(f"<{tag}>", q) for q in QUESTIONS] for tag in ("zzz", "yyy", "xxx")}
    torch.manual_seed(0)
    sae = StandardSAE(
        StandardSAEConfig(
            d_in=32, d_sae=16, metadata=SAEMetadata(hook_name="blocks.1.hook_resid_post")
        )
    )
    inputs = PersonaInputs(sets, PROMPTS)
    result = analyse_personas(
        pairs, inputs, PersonaConfig(sae=None), sae_model=sae, sae_source="test"
    )
    return result, pairs, tok, v


def test_projection_change_and_shift_match_the_planted_vector(found):
    result, pairs, tok, v = found
    for persona, direction in result.vectors.best().items():
        change_rl = result.projections.mean("rl", persona) - result.projections.mean(
            "base", persona
        )
        change_sft = result.projections.mean("sft", persona) - result.projections.mean(
            "base", persona
        )
        assert change_sft == pytest.approx(0.0, abs=1e-5)
        shift = result.shifts["rl"][persona]
        unit, norm = shift_direction(
            pairs["rl"].base.hf_model, pairs["rl"].post.hf_model, tok, PROMPTS, direction.layer
        )
        assert shift.shift_norm == pytest.approx(norm, rel=1e-4)
        assert shift.cosine == pytest.approx(float(unit @ direction.vector), abs=1e-4)
        assert change_rl == pytest.approx(norm * shift.cosine, abs=1e-4)
        if direction.layer == 1:  # every token moves by v there
            assert norm == pytest.approx(float(v.norm()), rel=1e-4)
            assert change_rl == pytest.approx(float(v @ direction.vector), abs=1e-4)


def test_summary_json_and_frame(found):
    result, _, _, _ = found
    summary = result.summary()
    frame = result.to_frame()
    rl = frame[frame.model == "rl"].set_index("persona")["change_vs_base"]
    assert summary["rl"].toward == rl.idxmax()
    assert summary.latents.moved["sft"] == 0
    js = result.to_json()
    assert js["sae"]["source"] == "test" and js["sae"]["hook"] == "blocks.1.hook_resid_post"
    assert set(js["shifts"]) == {"sft", "rl"} and set(js["directions"]["personas"]) == {
        "zzz",
        "yyy",
        "xxx",
    }
    assert "<table" in result._repr_html_()


def _headline(child):
    from postlens.diffs.personas.result import PersonaSummary
    from postlens.reporting.sections.personas import SECTION

    class Found:
        features, children = None, ["rl"]

        def summary(self):
            return PersonaSummary({"rl": child}, {}, None)

    return SECTION.sentences(Found())[0], dict(SECTION.cards(Found(), "rl"))


def test_the_headline_says_a_tie_or_a_fall_rather_than_a_direction():
    """A largest change that is a fall is no movement toward anything; a change within noise of
    another persona's is a tie. Only a rise clear of the rest is stated as a direction."""
    from postlens.diffs.personas.result import ChildPersonas

    rose = ChildPersonas("equation", {"equation": 3.0, "prose": -1.0}, {}, None)
    fell = ChildPersonas("prose", {"equation": -28.4, "prose": -1.15}, {}, None)
    tied = ChildPersonas("equation", {"equation": 3.0, "prose": 2.9}, {}, None, ("prose",))
    sentence, card = _headline(rose)
    assert "rl moved most toward equation (+3.00)" in sentence
    sentence, card = _headline(fell)
    assert "fell on every persona (least on prose, -1.15)" in sentence
    assert card["most-moved persona feature"] == "toward none: the projection fell on every persona"
    sentence, card = _headline(tied)
    assert "a tie, within noise" in sentence and card["most-moved persona feature"].startswith(
        "tie"
    )
