"""Without an optional extra, what needs it says how to install it; the rest still works."""

from __future__ import annotations

import pytest

import postlens as pl
from postlens.diffs.features import sae as sae_module


@pytest.fixture
def no_sae_lens(monkeypatch):
    monkeypatch.setattr(sae_module, "sae_lens_installed", lambda: False)


def test_persona_analysis_skips_latents_without_saelens(no_sae_lens, caplog):
    fam = pl.load("organism:base", sft="organism:sft", rl="organism:rl")
    found = fam.personas(config=pl.PersonaConfig(n_per_persona=12, n_prompts=12))
    assert found.features is None and found.summary().latents is None
    assert "pip install 'postlens[sae]'" in caplog.text
    from postlens.reporting.sections.personas import SECTION

    assert "pip install 'postlens[sae]'" in SECTION.render(found)


def test_an_sae_asked_for_by_name_needs_saelens(no_sae_lens):
    from postlens.models.specs import ORGANISM_ROOT

    with pytest.raises(pl.PostlensError, match=r"pip install 'postlens\[sae\]'"):
        sae_module.load_sae(ORGANISM_ROOT / "sae")
