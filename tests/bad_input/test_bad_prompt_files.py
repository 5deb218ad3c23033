"""Bad prompt files and datasets: InputFileError naming the file and the line, never a drop."""

from __future__ import annotations

import pytest
from bad_inputs import leftovers
from typer.testing import CliRunner

from postlens.cli import app
from postlens.data.prompts import check_completions, read_prompts
from postlens.errors import InputFileError

runner = CliRunner()

MIXED = (
    b'{"prompt": "a", "completion": "b"}\n{"prompt": "c"}\n\n'
    b'{"prompt": "d", "completion": "e"}\n{"prompt": "f"}\n'
)

#: file name → (bytes, text the error must contain after the file's path).
BAD_FILES = {
    "latin1.txt": (b"first\nsecond\ncaf\xe9\n", ":3: not UTF-8 text (byte 0xe9 at offset 16)"),
    "latin1.jsonl": (b'{"prompt": "a"}\n{"prompt": "\xff"}\n', ":2: not UTF-8 text (byte 0xff"),
    "binary.txt": (
        b"ok\n\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        ":4: binary file (NUL byte at offset 11)",
    ),
    "zeros.jsonl": (b"\x00" * 64, ":1: binary file"),
    "malformed.jsonl": (b'{"prompt": "a"}\n{"prompt": }\n', ":2: malformed JSON"),
    "mixed.jsonl": (MIXED, ": lines 2, 5 have no 'completion' but 2 other records have one"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_prompt_file_names_file_and_line(tmp_path, name):
    data, expected = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(InputFileError) as err:
        read_prompts(path, consistent_completions=True)
    assert f"{path}{expected}" in str(err.value)
    assert "\n" not in str(err.value)


def test_mixed_completions_are_kept_unless_checked(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(MIXED)
    records = read_prompts(path)  # the old behaviour: every record, none dropped
    assert [r.completion for r in records] == ["b", None, "e", None]
    with pytest.raises(InputFileError, match=r"lines 2, 5 have no"):
        check_completions(records, path)


def test_many_lines_are_counted(tmp_path):
    path = tmp_path / "p.jsonl"
    lines = ['{"prompt": "a", "completion": "b"}'] + ['{"prompt": "c"}'] * 14
    path.write_text("\n".join(lines))
    with pytest.raises(InputFileError, match=r"lines 2, 3, .*, 11 and 4 more have no"):
        read_prompts(path, consistent_completions=True)


def _saved(path, rows):
    import datasets

    datasets.Dataset.from_dict(rows).save_to_disk(str(path))
    return path


def _parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(rows), path)
    return path


@pytest.mark.parametrize("make, name", [(_saved, "ds"), (_parquet, "ds.parquet")])
def test_dataset_missing_column_names_the_columns(tmp_path, make, name):
    path = make(tmp_path / name, {"question": ["q"], "response": ["r"]})
    with pytest.raises(InputFileError, match=r"no 'prompt' column \(columns: question, response\)"):
        read_prompts(path)
    with pytest.raises(InputFileError, match=r"no 'reply' column \(columns: question, response\)"):
        read_prompts(path, prompt_field="question", completion_field="reply")


def test_dataset_rows_are_named(tmp_path):
    mixed = _saved(tmp_path / "mixed", {"prompt": ["a", "b", "c"], "completion": ["x", None, "y"]})
    with pytest.raises(InputFileError, match=r"mixed: row 2 has no 'completion' but 2 other"):
        read_prompts(mixed, consistent_completions=True)
    ints = _parquet(tmp_path / "ints.parquet", {"prompt": [1, 2]})
    with pytest.raises(
        InputFileError, match=r"ints.parquet: row 1: expected a string 'prompt' .* got int"
    ):
        read_prompts(ints)
    empty = _parquet(tmp_path / "empty.parquet", {"prompt": []})
    with pytest.raises(InputFileError, match="has no rows"):
        read_prompts(empty)


@pytest.mark.parametrize(
    "name, data, match",
    [
        ("junk.parquet", b"not parquet at all", "not a readable Parquet file"),
        ("junk.arrow", b"\x00\x01\x02", "not a readable Arrow file"),
    ],
)
def test_corrupted_dataset_files(tmp_path, name, data, match):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(InputFileError, match=rf"{name}: {match}"):
        read_prompts(tmp_path / name)


def test_folders_that_are_not_one_dataset(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"prompt": ["a"]})
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(InputFileError, match=r"several splits \(test, train\); give one split"):
        read_prompts(tmp_path / "dd")
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputFileError, match=r"plain: a folder, but not a dataset"):
        read_prompts(tmp_path / "plain")
    assert [r.prompt for r in read_prompts(tmp_path / "dd" / "train")] == ["a"]


@pytest.mark.parametrize("name", ["latin1.txt", "binary.txt", "malformed.jsonl"])
def test_cli_bad_prompt_file_is_one_line(tmp_path, name):
    data, expected = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(data)
    out = tmp_path / "out.json"
    result = runner.invoke(app, ["forks", "--prompts", str(path), "--json", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"postlens: error: {path}{expected}")
    assert "Traceback" not in result.output
    assert leftovers(tmp_path) == [name]
