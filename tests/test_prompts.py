"""Prompt files: JSONL and text, and errors that name the line."""

from __future__ import annotations

import pytest

from postlens.errors import InputFileError
from postlens.prompts import read_prompts


def test_jsonl_and_text(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "a", "completion": "b", "answer": 3}\n\n{"prompt": "c"}\n')
    records = read_prompts(f)
    assert [(r.prompt, r.completion, r.answer, r.line) for r in records] == [
        ("a", "b", 3, 1),
        ("c", None, None, 3),
    ]
    t = tmp_path / "p.txt"
    t.write_text("first\\nline\nsecond\n")
    assert [r.prompt for r in read_prompts(t)] == ["first\nline", "second"]


def test_errors_name_the_problem(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n \n")
    with pytest.raises(InputFileError, match="empty"):
        read_prompts(empty)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": oops}\n')
    with pytest.raises(InputFileError, match=r"bad.jsonl:2: malformed JSON"):
        read_prompts(bad)
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('{"text": "x"}\n')
    with pytest.raises(
        InputFileError, match=r"wrong.jsonl:1: expected an object with a string 'prompt'"
    ):
        read_prompts(wrong)
    with pytest.raises(InputFileError, match="not found"):
        read_prompts(tmp_path / "missing.txt")
