"""What analyses read: prompts (with optional completions and answers) and verifiable problems.

One home for input parsing, shared by the Python API, the report and the CLI: a prompt file
(`postlens.data.prompts`), a list given in code, or — when the base is the shipped organism and
nothing is given — the organism's held-out problems and its verifier.

Example:
    >>> records = prompt_records(["Q: 1 + 2 = ?\\n"], "organism:base")
    >>> records[0].prompt, records[0].completion
    ('Q: 1 + 2 = ?\\n', None)
    >>> prompts, verifiers = verifiable_problems(None, "organism:base", limit=2)
    >>> len(prompts), verifiers[0]("answer 0")
    (2, False)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postlens.data.prompts import PromptRecord, read_prompts
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


Verifier = Callable[[str], bool]
#: What a prompt source can be: a file, or prompts / (prompt, completion) pairs / records.
PromptSource = (
    str | Path | PromptFile | Sequence[str | tuple[str, str | None] | PromptRecord] | None
)
ORGANISM_PREFIX = "organism:"


def is_organism(spec: str) -> bool:
    """Whether a model spec names the shipped organism."""
    return str(spec).startswith(ORGANISM_PREFIX)


def organism_problems(n: int, offset: int = 0) -> list[Any]:
    """`n` of the organism's held-out problems (`offset` picks another held-out set)."""
    from postlens.organism.task import make_problems
    from postlens.organism.train import HELD_OUT_SEED

    return make_problems(n, HELD_OUT_SEED + offset)


def organism_verifier(problem: Any) -> Verifier:
    """The organism's verifier of one problem, as a callable of the completion."""
    from postlens.organism.task import verify

    return functools.partial(_check, verify, problem)


def _check(verify: Any, problem: Any, completion: str) -> bool:
    return verify(completion, problem)


def prompt_records(source: PromptSource, base: str, limit: int | None = None) -> list[PromptRecord]:
    """The prompts to analyse: from `source`, or the organism's problems when it is ``None``.

    Args:
        source: a prompt file (JSONL or text), a list of prompts, of (prompt, completion)
            pairs or of `PromptRecord`; ``None`` for the organism's held-out problems.
        base: the base model's spec (decides whether the organism's defaults apply).
        limit: keep at most this many (the first ones); ``None`` keeps all.

    Raises:
        InputFileError: nothing given for a model other than the organism, or a bad file.
        ConfigError: `limit` below 1.
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be at least 1, got {limit}")
    if source is None:
        if not is_organism(base):
            raise InputFileError(
                "give prompts (a JSONL file with a 'prompt' field, a text file with one prompt "
                "per line, or a list of strings)"
            )
        return [PromptRecord(p.prompt, answer=p.answer) for p in organism_problems(limit or 64)]
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
    source: PromptSource, base: str, limit: int | None = None, mode: str = "last-number"
) -> tuple[list[str], list[Verifier]]:
    """Prompts and one verifier each: from records' ``answer`` fields, or the organism's task.

    Args:
        source: as for `prompt_records`; every record needs an ``answer``.
        base: the first model's spec (decides whether the organism's defaults apply).
        limit: keep at most this many problems.
        mode: how an answer is checked (`postlens.data.verifiers.answer_verifier`); the
            organism's problems always use the organism's own verifier.

    Raises:
        InputFileError: a record has no answer, or its answer does not fit `mode`.
    """
    from postlens.data.verifiers import answer_verifier

    if source is None and is_organism(base):
        problems = organism_problems(limit or 64)
        return [p.prompt for p in problems], [organism_verifier(p) for p in problems]
    records = prompt_records(source, base, limit)
    verifiers = []
    for r in records:
        is_file = isinstance(source, str | Path | PromptFile)
        where = f"{source}:{r.line}" if is_file else f"prompt {r.line}"
        if r.answer is None:
            raise InputFileError(f"{where}: no 'answer' field to verify against")
        try:
            verifiers.append(answer_verifier(r.answer, mode))
        except ValueError as err:
            raise InputFileError(f"{where}: {err}") from None
    return [r.prompt for r in records], verifiers
