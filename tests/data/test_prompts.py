"""Prompt files (JSONL and text) and local Hugging Face datasets; errors that name the line."""

from __future__ import annotations

import pytest

from postlens.data.prompts import PromptRecord, check_completions, read_prompts
from postlens.errors import InputFileError


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
        InputFileError,
        match=r"wrong.jsonl:1: expected a string 'prompt' field \(or chat 'messages'\)",
    ):
        read_prompts(wrong)
    with pytest.raises(InputFileError, match="not found"):
        read_prompts(tmp_path / "missing.txt")


def test_line_endings_bom_and_unicode_separators(tmp_path):
    f = tmp_path / "p.jsonl"
    # A byte-order mark, CRLF endings and U+2028 inside a string (legal JSON) are all fine.
    f.write_bytes('\ufeff{"prompt": "a\u2028b"}\r\n\r\n{"prompt": "c"}\r\n'.encode())
    assert [(r.prompt, r.line) for r in read_prompts(f)] == [("a\u2028b", 1), ("c", 3)]


def test_custom_jsonl_fields(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"question": "q1", "response": "r1"}\n{"question": "q2", "response": "r2"}\n')
    records = read_prompts(f, prompt_field="question", completion_field="response")
    assert [(r.prompt, r.completion) for r in records] == [("q1", "r1"), ("q2", "r2")]
    with pytest.raises(
        InputFileError, match=r"no record has a 'answer_text' field \(fields: question, response\)"
    ):
        read_prompts(f, prompt_field="question", completion_field="answer_text")


def test_consistent_completions(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": "d"}\n')
    assert len(read_prompts(f, consistent_completions=True)) == 2
    none = [PromptRecord("a", line=1), PromptRecord("b", line=2)]
    assert check_completions(none, f) == none


ROWS = {"question": ["q1", "q2"], "completion": ["c1", "c2"], "answer": [3, 4]}


def _parquet(path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(ROWS), path)


def _arrow_file(path):
    import pyarrow as pa

    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, pa.table(ROWS).schema) as w:
        w.write_table(pa.table(ROWS))


def _saved(path):
    import datasets

    datasets.Dataset.from_dict(ROWS).save_to_disk(str(path))


def _saved_arrow(path):
    _saved(path.parent / "saved")
    (path.parent / "saved" / "data-00000-of-00001.arrow").rename(path)


@pytest.mark.parametrize(
    "name, make",
    [
        ("p.parquet", _parquet),
        ("p.arrow", _arrow_file),
        ("stream.arrow", _saved_arrow),
        ("folder", _saved),
    ],
)
def test_local_datasets(tmp_path, name, make):
    path = tmp_path / name
    make(path)
    records = read_prompts(path, prompt_field="question")
    assert [(r.prompt, r.completion, r.answer, r.line) for r in records] == [
        ("q1", "c1", 3, 1),
        ("q2", "c2", 4, 2),
    ]


def test_dataset_without_completions(tmp_path):
    """The default completion column may be absent: the prompts are then sampled, not scored."""
    import datasets

    datasets.Dataset.from_dict({"prompt": ["a", "b"]}).save_to_disk(str(tmp_path / "ds"))
    records = read_prompts(tmp_path / "ds", consistent_completions=True)
    assert [(r.prompt, r.completion, r.line) for r in records] == [("a", None, 1), ("b", None, 2)]
