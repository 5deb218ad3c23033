"""The whole organism recipe runs in a tiny configuration, so it cannot rot."""

from __future__ import annotations

import json

from postlens.organism.card import render_card
from postlens.organism.train import RecipeConfig, run_recipe


def test_recipe_smoke_writes_three_loadable_models(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    record = run_recipe(tmp_path, seed=0, config=RecipeConfig.smoke())
    for name in ("base", "sft", "rl"):
        model = AutoModelForCausalLM.from_pretrained(tmp_path / name)
        tok = AutoTokenizer.from_pretrained(tmp_path / name)
        assert model.config.model_type == "llama" and len(tok) == model.config.vocab_size
        assert (tmp_path / name / "model.safetensors").is_file()
        assert set(record["eval"][name]["pass_at"]) == {1, 2, 4}
    assert json.loads((tmp_path / "eval.json").read_text())["seed"] == 0
    assert not any(p.name.startswith("_") for p in tmp_path.iterdir())
    card = render_card(json.loads((tmp_path / "eval.json").read_text()))
    assert "| base | 0." in card and "held-out problems" in card
