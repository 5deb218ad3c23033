"""Prompt files: JSONL with a ``prompt`` field (optional ``completion`` / ``answer``), or plain text.

Example:
    >>> records = read_prompts("prompts.jsonl")  # doctest: +SKIP
    >>> records[0].prompt  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postlens.errors import InputFileError


@dataclass(frozen=True)
class PromptRecord:
    """One prompt, and optionally a completion to score and a reference answer.

    Attributes:
        prompt: the prompt text.
        completion: a completion to teacher-force, or ``None`` to sample one.
        answer: a reference answer for verifiers, or ``None``.
        line: the line of the file it came from (1-based).
    """

    prompt: str
    completion: str | None = None
    answer: Any = None
    line: int = 0


def _from_json(text: str, path: Path, line: int) -> PromptRecord:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputFileError(f"{path}:{line}: malformed JSON ({err.msg})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
        raise InputFileError(f"{path}:{line}: expected an object with a string 'prompt' field")
    completion = obj.get("completion")
    if completion is not None and not isinstance(completion, str):
        raise InputFileError(f"{path}:{line}: 'completion' must be a string")
    return PromptRecord(obj["prompt"], completion, obj.get("answer"), line)


def read_prompts(path: str | Path) -> list[PromptRecord]:
    """Read a prompt file; a ``.jsonl`` file (or one whose first line is an object) is JSONL.

    Raises:
        InputFileError: missing or empty file, or a malformed line (named by its number).
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: prompt file not found")
    lines = path.read_text(encoding="utf-8").splitlines()
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip()]
    if not numbered:
        raise InputFileError(f"{path}: prompt file is empty")
    is_jsonl = path.suffix == ".jsonl" or numbered[0][1].lstrip().startswith("{")
    if is_jsonl:
        return [_from_json(text, path, line) for line, text in numbered]
    # Plain text: one prompt per line; "\n" inside a line stands for a newline.
    return [PromptRecord(text.replace("\\n", "\n"), line=line) for line, text in numbered]
