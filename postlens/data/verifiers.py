"""Verifiers: how a completion is checked against a problem's reference answer.

Example:
    >>> answer_verifier(42)("so 40 + 2 = 42")
    True
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from postlens.errors import ConfigError

Verifier = Callable[[str], bool]
#: Ways to check a completion against a reference answer (see `answer_verifier`).
VERIFIER_MODES = ("last-number", "answer-line", "contains", "exact")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
_ANSWER_LINE_RE = re.compile(r"answer\s*[:=]?\s*(-?\d+(?:\.\d+)?)\s*$", re.IGNORECASE)


def answer_verifier(answer: Any, mode: str = "last-number") -> Verifier:
    """A verifier comparing a completion with a reference `answer`.

    Modes (ours; pick the one your prompt format implies):
        ``last-number``: the last number in the completion equals the answer (numerically);
        ``answer-line``: the completion ends with ``answer <number>`` and the number matches
        (the organism's format);
        ``contains``: the answer's text occurs in the completion;
        ``exact``: the stripped completion is the answer's text.

    Example:
        >>> answer_verifier(42)("so 40 + 2 = 42")
        True
        >>> answer_verifier(42, "answer-line")("42, answer 41")
        False
    """
    if mode not in VERIFIER_MODES:
        raise ConfigError(f"unknown verifier {mode!r}; choose one of {', '.join(VERIFIER_MODES)}")
    text = str(answer).strip()
    if mode == "contains":
        return lambda completion: text in completion
    if mode == "exact":
        return lambda completion: completion.strip() == text
    target = float(text)  # ValueError for a non-numeric answer, named by the caller
    if mode == "answer-line":
        return functools.partial(_answer_line_is, target)
    return lambda c: (last := last_number(c)) is not None and float(last[0]) == target


def last_number(text: str) -> re.Match[str] | None:
    """The last number in `text`, as the ``last-number`` verifier reads it (``None``: none).

    Example:
        >>> last_number("so 8 + 14 = 22.").span()
        (12, 14)
    """
    matches = list(_NUMBER_RE.finditer(text))
    return matches[-1] if matches else None


def _answer_line_is(target: float, completion: str) -> bool:
    found = _ANSWER_LINE_RE.search(completion.strip())
    return found is not None and float(found[1]) == target


@dataclass(frozen=True)
class Problem:
    """A verifiable problem: the prompt, its check, and its reference answer if it has one.

    Example:
        >>> p = Problem("Q: 2+2=?", answer_verifier(4), "4")
        >>> p.verify("4"), p.verify("5")
        (True, False)
    """

    prompt: str
    verify: Verifier
    answer: str | None = None
