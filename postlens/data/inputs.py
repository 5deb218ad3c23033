"""What analyses read: prompts (with optional completions and answers) and verifiable problems.

One home for input parsing, shared by the Python API, the report and the CLI: a prompt file
(`postlens.data.prompts`) or a list given in code. What a family reads when nothing is given
comes from its default inputs (`postlens.data.defaults`), not from here.

Example:
    >>> records = prompt_records(["Q: 1 + 2 = ?\\n"])
    >>> records[0].prompt, records[0].completion
    ('Q: 1 + 2 = ?\\n', None)
    >>> problems = verifiable_problems([("Q: 1 + 2 = ?", 3)])
    >>> problems[0].verify("so 3"), problems[0].answer
    (True, '3')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postlens.data.prompts import PromptRecord, read_prompts

if TYPE_CHECKING:
    from postlens.data.verifiers import Problem
from postlens.errors import ConfigError, InputFileError


@dataclass(frozen=True)
class PromptFile:
    """A prompt file or local dataset read with other field (column) names.

    A path-like object (``os.fspath`` gives the file), so it goes wherever a prompt path does.

    Attributes:
        path: the JSONL or text file, ``.parquet`` / ``.arrow`` file or ``save_to_disk`` folder.
        prompt_field: the field or column holding the prompt.
        completion_field: the field or column holding the completion.

    Example:
        >>> import os
        >>> os.fspath(PromptFile("data.parquet", prompt_field="question"))
        'data.parquet'
    """

    path: str | Path
    prompt_field: str = "prompt"
    completion_field: str = "completion"

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return os.fspath(self.path)

    def read(self) -> list[PromptRecord]:
        return read_prompts(
            self.path, prompt_field=self.prompt_field, completion_field=self.completion_field
        )


def prompt_file(
    path: str | Path | None, prompt_field: str = "prompt", completion_field: str = "completion"
) -> PromptFile | Path | None:
    """`path` as a `PromptFile` when field names other than the defaults are given.

    Example:
        >>> prompt_file("p.jsonl"), prompt_file(None)
        (PosixPath('p.jsonl'), None)
    """
    if path is None:
        if (prompt_field, completion_field) != ("prompt", "completion"):
            raise ConfigError("--prompt-field / --completion-field need a prompt file (--prompts)")
        return None
    if (prompt_field, completion_field) == ("prompt", "completion"):
        return Path(path)
    return PromptFile(path, prompt_field, completion_field)


#: What a prompt source can be: a file, or prompts / (prompt, completion) pairs / records.
PromptSource = (
    str | Path | PromptFile | Sequence[str | tuple[str, str | None] | PromptRecord] | None
)


def prompt_records(source: PromptSource, limit: int | None = None) -> list[PromptRecord]:
    """The prompts to analyse, from `source`.

    Args:
        source: a prompt file (JSONL or text), a list of prompts, of (prompt, completion)
            pairs or of `PromptRecord`.
        limit: keep at most this many (the first ones); ``None`` keeps all.

    Raises:
        InputFileError: nothing given, or a bad file.
        ConfigError: `limit` below 1.
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be at least 1, got {limit}")
    if source is None:
        raise InputFileError(
            "give prompts (a JSONL file with a 'prompt' field, a text file with one prompt "
            "per line, or a list of strings)"
        )
    if isinstance(source, PromptFile):
        records = source.read()
    elif isinstance(source, str | Path):
        records = read_prompts(source)
    else:
        records = [_record(x, i + 1) for i, x in enumerate(source)]
    if not records:
        raise InputFileError("no prompts given")
    return records[:limit] if limit else records


def _record(item: Any, line: int) -> PromptRecord:
    if isinstance(item, PromptRecord):
        return item
    if isinstance(item, str):
        return PromptRecord(item, line=line)
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        return PromptRecord(item[0], item[1], line=line)
    raise InputFileError(
        f"prompt {line}: expected a string, a (prompt, completion) pair or a PromptRecord, "
        f"got {type(item).__name__}"
    )


def verifiable_problems(
    source: PromptSource, limit: int | None = None, mode: str = "last-number"
) -> list[Problem]:
    """Problems with one verifier each, from the records' ``answer`` fields.

    Args:
        source: as for `prompt_records`; every record needs an ``answer`` (pairs are read as
            ``(prompt, answer)``).
        limit: keep at most this many problems.
        mode: how an answer is checked (`postlens.data.verifiers.answer_verifier`).

    Raises:
        InputFileError: a record has no answer, or its answer does not fit `mode`.
    """
    from postlens.data.verifiers import Problem, answer_verifier

    if isinstance(source, Sequence) and not isinstance(source, str):
        source = [_as_problem_record(x, i + 1) for i, x in enumerate(source)]
    is_file = isinstance(source, str | Path | PromptFile)
    out = []
    for r in prompt_records(source, limit):
        where = f"{source}:{r.line}" if is_file else f"prompt {r.line}"
        if r.answer is None:
            raise InputFileError(f"{where}: no 'answer' field to verify against")
        try:
            out.append(Problem(r.prompt, answer_verifier(r.answer, mode), str(r.answer)))
        except ValueError as err:
            raise InputFileError(f"{where}: {err}") from None
    return out


def has_answers(source: PromptSource) -> bool:
    """Whether every record of `source` has an ``answer`` (so it can be verified)."""
    if isinstance(source, Sequence) and not isinstance(source, str):
        source = [_as_problem_record(x, i + 1) for i, x in enumerate(source)]
    return all(r.answer is not None for r in prompt_records(source))


def _as_problem_record(item: Any, line: int) -> Any:
    """A ``(prompt, answer)`` pair or a ``{"prompt", "answer"}`` dict as a `PromptRecord`."""
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        return PromptRecord(item[0], answer=item[1], line=line)
    if isinstance(item, dict) and isinstance(item.get("prompt"), str):
        return PromptRecord(item["prompt"], answer=item.get("answer"), line=line)
    return item
