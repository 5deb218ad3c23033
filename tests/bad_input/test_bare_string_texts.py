"""A bare string is one text, never a sequence of one-character texts."""

from __future__ import annotations

import pytest

from postlens.pair import ModelPair
from postlens.testing import tiny_model


@pytest.fixture(scope="module")
def pair():
    base, tok = tiny_model("gpt2", seed=0)
    post, _ = tiny_model("gpt2", seed=1)
    return ModelPair.from_models(base, post, tok)


def test_bare_string_is_one_text(pair):
    text = "q: 12 + 34 = ?"
    batch = pair.tokenize(text)
    assert batch.input_ids.shape[0] == 1 and batch.texts == [text]
    listed = pair.tokenize([text])
    assert batch.input_ids.tolist() == listed.input_ids.tolist()


def test_tuple_of_texts_still_works(pair):
    assert pair.tokenize(("ab", "abc")).input_ids.shape[0] == 2
