"""Default inputs: a checkpoint folder of one's own declares them the way the organism does.

A tiny model saved from a config, with a ``postlens-inputs.json`` beside it, gets its problems
(checked by its verifier), classifier and texts with no argument; what ``pl.load(inputs=...)``
gives comes first; a bad file is one clear error.
"""

from __future__ import annotations

import json

import pytest

import postlens as pl
from postlens.data.defaults import INPUTS_FILE, InputProvider, file_inputs, provider_for
from postlens.errors import InputFileError
from postlens.testing import save_model, tiny_model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    model, tok = tiny_model(seed=0)
    base, post = save_model(model, tok, root / "base"), save_model(model, tok, root / "post")
    (base / "problems.jsonl").write_text(
        "".join(
            json.dumps({"prompt": f"{i} plus one is", "answer": i + 1}) + "\n" for i in range(5)
        )
    )
    (base / "generic.txt").write_text("The weather is mild.\nA cat sat on the mat.\n")
    (base / INPUTS_FILE).write_text(
        json.dumps(
            {
                "problems": "problems.jsonl",
                "texts": "generic.txt",
                "classifier": {"short": "^.{0,8}$"},
            }
        )
    )
    return base, post


def test_a_folder_declares_its_defaults(folder):
    base, post = folder
    fam = pl.load(str(base), post=str(post))
    problems = fam.inputs.problems(3)
    assert [p.answer for p in problems] == ["1", "2", "3"]
    assert problems[1].verify("so it is 2") and not problems[1].verify("so it is 3")
    assert fam.inputs.texts(5) == ["The weather is mild.", "A cat sat on the mat."]
    assert (
        fam.inputs.classifier()("tiny") == "short" and fam.inputs.classifier()("x" * 20) == "other"
    )
    assert fam.inputs.provides("problems") and not fam.inputs.provides("traces")
    result = fam.passk(
        config=pl.PassKConfig(sample=pl.SampleConfig(n=2, limit=2, max_new_tokens=4))
    )
    assert result.summary().n_problems == 2


def test_given_inputs_come_first(folder):
    base, post = folder
    given = pl.Inputs(problems=[("7 plus one is", 8)], classifier=lambda c: "mine")
    fam = pl.load(str(base), post=str(post), inputs=given)
    assert [p.answer for p in fam.inputs.problems(5)] == ["8"]
    assert fam.inputs.classifier()("x") == "mine"
    assert fam.inputs.texts(1) == ["The weather is mild."]  # not given: the folder's


def test_no_defaults_is_a_clear_error(tmp_path):
    model, tok = tiny_model(seed=0)
    base = save_model(model, tok, tmp_path / "base")
    fam = pl.load(str(base), post=str(base))
    assert isinstance(fam.inputs, InputProvider) and fam.inputs.problems(3) is None
    with pytest.raises(InputFileError, match="no default problems"):
        fam.passk()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{nope", "not a JSON file"),
        ('{"problem": "p.jsonl"}', "unknown key"),
        ('{"problems": "missing.jsonl"}', "which is not there"),
        ('{"personas": "p.jsonl"}', "go together"),
        ('{"classifier": {"a": "("}}', "bad regex"),
    ],
)
def test_a_bad_inputs_file_is_named(tmp_path, content, message):
    (tmp_path / "p.jsonl").write_text('{"persona": "a", "prompt": "x"}\n')
    (tmp_path / INPUTS_FILE).write_text(content)
    with pytest.raises(pl.PostlensError, match=message):
        file_inputs(tmp_path / INPUTS_FILE)


def test_the_organism_registers_its_own():
    organism = provider_for("organism:base")
    assert organism.source == "the organism"
    assert all(organism.provides(k) for k in ("problems", "classifier", "texts", "personas"))
    assert provider_for("some/folder").problems(1) is None
