"""The real-LM organism's build, run end to end on a tiny chat model (`Recipe.smoke`)."""

from __future__ import annotations

import json
import shutil

import pytest

import postlens as pl
from postlens.lm_organism.build import build
from postlens.lm_organism.layout import model_dir
from postlens.lm_organism.recipe import Recipe
from postlens.lm_organism.task import Problem, classify_style, split, verify
from postlens.models.specs import CACHE_ENV, resolve_spec
from postlens.testing import build_tokenizer, save_model, tiny_model

CHATML = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


def test_the_task_verifies_and_classifies_replies():
    p = Problem(7, 15)
    assert verify("7 + 15 = 22", p) and verify("so it is 22.", p) and not verify("21", p)
    assert [classify_style(r) for r in ("22", "7 + 15 = 22", "it is 22", "no idea")] == [
        "bare", "equation", "prose", "other"
    ]  # fmt: skip
    train, test = split(61, seed=0)
    assert len(train) == 300 and len(set(train) | set(test)) == 361


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("organism")
    model, _ = tiny_model("llama", seed=0)
    tok = build_tokenizer()
    tok.chat_template = CHATML
    source = save_model(model, tok, root / "source")
    cache = root / "cache"
    folder = build(cache, Recipe.smoke(), source=str(source))
    return cache, folder, source


def test_every_model_is_built_with_its_inputs_and_evaluation(built):
    cache, folder, _ = built
    for model in ("base", "sft", "rl"):
        assert (model_dir(folder, model) / "model.safetensors").is_file()
    assert (model_dir(folder, "lora") / "adapter_model.safetensors").is_file()
    adapter = json.loads((model_dir(folder, "lora") / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "organism:smol-base"
    evaluation = json.loads((folder / "eval.json").read_text())
    assert set(evaluation["models"]) == {"base", "sft", "rl", "lora"}
    assert set(evaluation["models"]["rl"]["pass_at_k"]) == {"1", "2"}
    card = (folder / "MODEL_CARD.md").read_text()  # its numbers are the evaluation's
    rl = evaluation["models"]["rl"]
    assert f"| rl | {rl['pass_at_k']['1']:.3f} | {rl['pass_at_k']['2']:.3f} |" in card
    sft = json.loads((model_dir(folder, "sft") / "training.json").read_text())
    assert f"| sft | {sft['steps']} | {sft['seconds'] / 60:.1f} |" in card  # from training.json
    assert not list(folder.glob("*.partial"))


def test_the_specs_resolve_to_the_cache_and_bring_the_family_inputs(built, monkeypatch):
    cache, folder, _ = built
    monkeypatch.setenv(CACHE_ENV, str(cache))
    assert resolve_spec("organism:smol-sft").location == str(model_dir(folder, "sft"))
    assert resolve_spec("organism:smol-lora").kind == "adapter"
    fam = pl.load("organism:smol-base", post="organism:smol-lora")
    problems = fam.inputs.problems(100)
    assert len(problems) == Recipe.smoke().held_out
    assert fam.inputs.classifier()("3 + 4 = 7") == "equation"


def test_an_unbuilt_model_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    with pytest.raises(pl.SpecError, match="postlens organism build smol"):
        resolve_spec("organism:smol-rl")


def test_a_built_step_is_skipped_and_an_interrupted_one_redone(built):
    cache, folder, source = built
    shutil.copytree(model_dir(folder, "rl"), folder / "smol-rl.partial")
    shutil.rmtree(model_dir(folder, "rl"))
    seen = []
    build(cache, Recipe.smoke(), source=str(source), on_step=lambda s, what: seen.append((s, what)))
    assert ("base", "skip") in seen and ("rl", "done") in seen and ("sft", "skip") in seen
    assert (model_dir(folder, "rl") / "model.safetensors").is_file()


def test_a_cache_that_cannot_be_written_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(pl.ConfigError, match="not writable"):
        build(blocker / "cache", Recipe.smoke(), steps=("base",), source="unused")


def test_the_command_refuses_an_unknown_step_or_organism_in_one_line():
    from typer.testing import CliRunner

    from postlens.cli import app

    for args, needle in ((["--steps", "base,nope"], "unknown build step(s) nope"),
                         (["gemma"], "unknown organism 'gemma'")):  # fmt: skip
        out = CliRunner().invoke(app, ["organism", "build", *args])
        assert out.exit_code != 0 and needle in out.output and "Traceback" not in out.output
