"""Prompt files and local Hugging Face datasets of prompts (optional completions and answers).

Accepted sources:

* JSONL: one object per line with a ``prompt`` field (optional ``completion`` / ``answer``),
  or a chat-format record (``messages``, or a ``prompt`` given as messages: see
  `postlens.data.messages`);
* plain text: one prompt per line, ``\\n`` inside a line standing for a newline;
* a local Hugging Face dataset: a ``.parquet`` or ``.arrow`` file, or a folder written by
  ``datasets.Dataset.save_to_disk``, with ``prompt`` and ``completion`` columns (other names
  through ``prompt_field`` / ``completion_field``).

Every error is an `InputFileError` naming the file and the line (or dataset row) at fault; no
record is ever dropped silently.

Example:
    >>> _ = open("prompts.jsonl", "w").write('{"prompt": "Q: 1+2=?", "completion": "3"}\\n')
    >>> records = read_prompts("prompts.jsonl")
    >>> records[0].prompt, records[0].completion, records[0].line
    ('Q: 1+2=?', '3', 1)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postlens.data.messages import from_conversational, from_messages
from postlens.errors import InputFileError, NotSupportedError

#: File suffixes read as a Hugging Face dataset rather than as text.
DATASET_SUFFIXES = (".parquet", ".arrow")
#: The largest prompt file read (it is read whole; a bigger one is refused before reading).
MAX_FILE_BYTES = 1 << 30
#: How many line or row numbers an error lists before it says how many more there are.
SHOWN_LINES = 10
_DEFAULT_COMPLETION = "completion"


@dataclass(frozen=True)
class PromptRecord:
    """One prompt, and optionally a completion to score and a reference answer.

    Attributes:
        prompt: the prompt text.
        completion: a completion to teacher-force, or ``None`` to sample one.
        answer: a reference answer for verifiers, or ``None``.
        line: the line of the file it came from (1-based); for a dataset, the row (1-based).
    """

    prompt: str
    completion: str | None = None
    answer: Any = None
    line: int = 0


def read_prompts(
    path: str | Path,
    *,
    prompt_field: str = "prompt",
    completion_field: str = _DEFAULT_COMPLETION,
    consistent_completions: bool = False,
) -> list[PromptRecord]:
    """Read prompts from a JSONL or text file, or from a local Hugging Face dataset.

    A ``.jsonl`` file (or one whose first line is an object) is JSONL; a ``.parquet`` or
    ``.arrow`` file, or a ``save_to_disk`` folder, is a dataset; anything else is plain text.

    Args:
        path: the prompt file or dataset folder.
        prompt_field: the field (JSONL) or column (dataset) holding the prompt.
        completion_field: the field or column holding the completion. The default
            ``"completion"`` may be absent (nothing is teacher-forced); another name must exist.
        consistent_completions: also refuse a source where some records have a completion and
            others do not (see `check_completions`).

    Returns:
        One record per non-blank line or dataset row, in order.

    Raises:
        InputFileError: missing or empty source, a device or pipe, a file over
            `MAX_FILE_BYTES`, non-UTF-8 or binary text, a malformed line, an empty prompt, a
            missing field or column (named, with the columns there are).

    Example:
        >>> _ = open("prompts.txt", "w").write("\\nfirst prompt\\nsecond\\n")
        >>> read_prompts("prompts.txt")[0].line
        2
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: prompt file not found")
    if not (path.is_file() or path.is_dir()):  # /dev/zero, a pipe: reading never ends
        raise InputFileError(f"{path}: not a regular file (a device or a pipe); give a file")
    if path.is_file() and (size := path.stat().st_size) > MAX_FILE_BYTES:
        raise InputFileError(
            f"{path}: {size / 2**30:.1f} GiB, more than the "
            f"{MAX_FILE_BYTES / 2**30:.0f} GiB a prompt file may hold; give a dataset folder "
            "(read row by row) or a smaller file"
        )
    if path.is_dir() or path.suffix in DATASET_SUFFIXES:
        records = _read_dataset(path, prompt_field, completion_field)
    else:
        records = _read_text(path, prompt_field, completion_field)
    if consistent_completions:
        check_completions(records, path, completion_field)
    return records


def check_completions(
    records: Sequence[PromptRecord], source: str | Path, completion_field: str = "completion"
) -> list[PromptRecord]:
    """Refuse records where some have a completion and others do not.

    A command that teacher-forces completions when a file has them would otherwise score some
    records and sample (or skip) the others without saying so.

    Args:
        records: records from `read_prompts`.
        source: the file or dataset they came from, named in the error.
        completion_field: the field name, for the message.

    Returns:
        `records`, as a list, when all or none have a completion.

    Raises:
        InputFileError: naming the lines (or dataset rows) without a completion.

    Example:
        >>> check_completions([PromptRecord("a", "b", line=1), PromptRecord("c", line=2)], "p.jsonl")
        Traceback (most recent call last):
        ...
        postlens.errors.InputFileError: p.jsonl: line 2 has no 'completion' but 1 other record has one; give every record a completion, or none to sample them
    """
    records = list(records)
    without = [r.line for r in records if r.completion is None]
    if not without or len(without) == len(records):
        return records
    source = Path(source)
    unit = "row" if source.is_dir() or source.suffix in DATASET_SUFFIXES else "line"
    others = len(records) - len(without)
    raise InputFileError(
        f"{source}: {unit}{'s' if len(without) > 1 else ''} {_numbers(without)} "
        f"{'have' if len(without) > 1 else 'has'} no {completion_field!r} but {others} other "
        f"record{'s' if others > 1 else ''} {'have' if others > 1 else 'has'} one; give every "
        "record a completion, or none to sample them"
    )


# --- text and JSONL ---------------------------------------------------------------------
def _read_text(path: Path, prompt_field: str, completion_field: str) -> list[PromptRecord]:
    numbered = [(i + 1, ln.rstrip("\r")) for i, ln in enumerate(_decode(path).split("\n"))]
    numbered = [(line, text) for line, text in numbered if text.strip()]
    if not numbered:
        raise InputFileError(f"{path}: prompt file is empty")
    is_jsonl = path.suffix == ".jsonl" or numbered[0][1].lstrip().startswith("{")
    if not is_jsonl:
        # Plain text: one prompt per line; "\n" inside a line stands for a newline.
        return [PromptRecord(text.replace("\\n", "\n"), line=line) for line, text in numbered]
    records, fields = [], set()
    for line, text in numbered:
        record, keys = _from_json(text, path, line, prompt_field, completion_field)
        records.append(record)
        fields |= keys
    if completion_field != _DEFAULT_COMPLETION and completion_field not in fields:
        raise InputFileError(
            f"{path}: no record has a {completion_field!r} field (fields: {_names(sorted(fields))})"
        )
    return records


def _decode(path: Path) -> str:
    """The file as text; a binary or non-UTF-8 file is named with the line at fault."""
    data = path.read_bytes()
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise InputFileError(
            f"{path}:{line}: binary file (NUL byte at offset {nul}); "
            "expected UTF-8 text or JSONL, or a .parquet / .arrow dataset"
        )
    try:
        return data.decode("utf-8-sig")  # a leading byte-order mark is not part of the prompt
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise InputFileError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset "
            f"{err.start}); re-encode the file as UTF-8"
        ) from None


def _from_json(
    text: str, path: Path, line: int, prompt_field: str, completion_field: str
) -> tuple[PromptRecord, set[str]]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputFileError(f"{path}:{line}: malformed JSON ({err.msg})") from None
    if not isinstance(obj, dict):
        raise InputFileError(f"{path}:{line}: expected a JSON object, got {type(obj).__name__}")
    prompt, completion = _prompt_of(obj, prompt_field, completion_field, f"{path}:{line}")
    return PromptRecord(prompt, completion, obj.get("answer"), line), set(obj)


def _prompt_of(
    obj: dict[str, Any], prompt_field: str, completion_field: str, where: str
) -> tuple[str, str | None]:
    """A record's prompt and completion: plain strings, TRL's conversational prompt (a list of
    messages), or a ``messages`` conversation (see `postlens.data.messages`)."""
    prompt, completion = obj.get(prompt_field), obj.get(completion_field)
    if prompt is None and prompt_field == "prompt" and "messages" in obj:
        if completion is not None:
            raise InputFileError(
                f"{where}: give the completion as the last assistant message of 'messages' or "
                f"as {completion_field!r}, not both"
            )
        return from_messages(obj["messages"], where)
    if isinstance(prompt, list):
        prompt, completion = from_conversational(prompt, completion, where)
    elif not isinstance(prompt, str):
        got = "none" if prompt is None else type(prompt).__name__
        raise InputFileError(
            f"{where}: expected a string {prompt_field!r} field (or chat 'messages'), got {got}"
        )
    if completion is not None and not isinstance(completion, str):
        raise InputFileError(f"{where}: {completion_field!r} must be a string")
    if not prompt.strip():
        raise InputFileError(f"{where}: {prompt_field!r} is empty")
    return prompt, completion


# --- Hugging Face datasets --------------------------------------------------------------
def _read_dataset(path: Path, prompt_field: str, completion_field: str) -> list[PromptRecord]:
    columns, rows = _dataset_rows(path, [prompt_field, completion_field, "answer", "messages"])
    if prompt_field not in columns and not (prompt_field == "prompt" and "messages" in columns):
        raise InputFileError(
            f"{path}: no {prompt_field!r} column (columns: {_names(columns)}); "
            "name the prompt column with prompt_field"
        )
    if completion_field not in columns and completion_field != _DEFAULT_COMPLETION:
        raise InputFileError(f"{path}: no {completion_field!r} column (columns: {_names(columns)})")
    if not rows:
        raise InputFileError(f"{path}: the dataset has no rows")
    records = []
    for i, row in enumerate(rows, start=1):
        prompt, completion = _prompt_of(row, prompt_field, completion_field, f"{path}: row {i}")
        records.append(PromptRecord(prompt, completion, row.get("answer"), i))
    return records


def _dataset_rows(path: Path, wanted: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    """All column names, and the rows restricted to the `wanted` columns that exist."""
    try:  # datasets (and its pyarrow) is an optional dependency: import it only when needed
        import pyarrow as pa
    except ImportError:
        raise NotSupportedError(
            f"{path}: reading a dataset needs the datasets package (pip install datasets); "
            "or give the prompts as JSONL"
        ) from None
    try:
        if path.is_dir():
            return _saved_dataset_rows(path, wanted)
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            table = _read_arrow(path)
    except (pa.ArrowException, OSError, ValueError) as err:
        kind = {".parquet": "Parquet file", ".arrow": "Arrow file"}.get(path.suffix, "dataset")
        msg = " ".join(str(err).split())
        raise InputFileError(f"{path}: not a readable {kind} ({msg})") from None
    keep = [c for c in dict.fromkeys(wanted) if c in table.column_names]
    return table.column_names, table.select(keep).to_pylist()


def _read_arrow(path: Path) -> Any:
    import pyarrow as pa

    # save_to_disk writes the IPC stream format; pyarrow's own .arrow files are the file format.
    with pa.memory_map(str(path)) as source:
        try:
            return pa.ipc.open_stream(source).read_all()
        except pa.ArrowInvalid:
            source.seek(0)
            return pa.ipc.open_file(source).read_all()


def _saved_dataset_rows(path: Path, wanted: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    import datasets

    if (path / "dataset_dict.json").is_file():
        splits = sorted(p.name for p in path.iterdir() if (p / "state.json").is_file())
        raise InputFileError(
            f"{path}: holds several splits ({', '.join(splits)}); give one split's folder, "
            f"e.g. {path / splits[0]}"
            if splits
            else f"{path}: a DatasetDict folder without any split"
        )
    if not (path / "state.json").is_file():
        raise InputFileError(
            f"{path}: a folder, but not a dataset written by save_to_disk (no state.json); "
            "give a prompt file, a .parquet or .arrow file, or such a folder"
        )
    ds = datasets.load_from_disk(str(path))
    keep = [c for c in dict.fromkeys(wanted) if c in ds.column_names]
    return list(ds.column_names), ds.select_columns(keep).to_list()


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) or "none"


def _numbers(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:SHOWN_LINES])
    more = len(numbers) - SHOWN_LINES
    return f"{shown} and {more} more" if more > 0 else shown
