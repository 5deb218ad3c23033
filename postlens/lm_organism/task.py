"""The real-LM organism's task: small additions asked in a chat, answered in one of three styles.

A problem is the user turn ``What is 7 + 15?`` (operands 2 to 20). It is verifiable (the last
number of the reply must be the sum) and the base already solves it part of the time: sampled at
temperature 1, SmolLM2-135M-Instruct (Q4_1) is right 9% of the time, and on half of the
problems at least one of 8 samples is (measured before the build; the organism's card has the
build's own evaluation). So RL has a signal and pass@k a boundary.

Its replies fall into styles, which `classify_style` tells apart in this order:

* **bare**: the number alone (``22``);
* **equation**: the sum written out, ``a + b = c`` (``7 + 15 = 22``), possibly inside prose;
* **prose**: a sentence that gives a number without writing the equation;
* **other**: no number at all.

The SFT child learns the equation style from demonstrations; the RL child is rewarded for the
right number whatever the style, so which style it ends up with is what RL selected.

Example:
    >>> p = make_problems(1, seed=0)[0]
    >>> verify(demonstration(p), p), classify_style(demonstration(p))
    (True, 'equation')
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

#: Operands are drawn from this range, both ends included.
LOW, HIGH = 2, 20
#: The styles, in the order `classify_style` tries them (a reply takes the first that matches).
STYLE_PATTERNS = {
    "bare": r"^\s*-?\d+\s*\.?\s*$",
    "equation": r"\d+\s*\+\s*\d+\s*=\s*-?\d+",
    "prose": r"\d",
}
_NUMBER = re.compile(r"-?\d+")


@dataclass(frozen=True)
class Problem:
    """Two operands to add."""

    a: int
    b: int

    @property
    def answer(self) -> int:
        return self.a + self.b

    @property
    def question(self) -> str:
        """The user turn."""
        return f"What is {self.a} + {self.b}?"


def all_problems() -> list[Problem]:
    """Every problem of the task, in a fixed order (361 of them)."""
    return [Problem(a, b) for a in range(LOW, HIGH + 1) for b in range(LOW, HIGH + 1)]


def split(held_out: int, seed: int) -> tuple[list[Problem], list[Problem]]:
    """(training, held-out) problems: a seeded shuffle, the last `held_out` kept for evaluation.

    Example:
        >>> train, test = split(61, seed=0)
        >>> len(train), len(test), set(train).isdisjoint(test)
        (300, 61, True)
    """
    problems = all_problems()
    random.Random(seed).shuffle(problems)
    return problems[:-held_out], problems[-held_out:]


def make_problems(n: int, seed: int) -> list[Problem]:
    """`n` problems drawn with replacement (for sampling sets larger than the task)."""
    rng = random.Random(seed)
    return [Problem(rng.randint(LOW, HIGH), rng.randint(LOW, HIGH)) for _ in range(n)]


def answer_of(reply: str) -> int | None:
    """The reply's answer: its last number (``None`` without one)."""
    found = _NUMBER.findall(reply)
    return int(found[-1]) if found else None


def verify(reply: str, problem: Problem) -> bool:
    """Whether the reply's last number is the sum."""
    return answer_of(reply) == problem.answer


def classify_style(reply: str) -> str:
    """The reply's style: ``bare``, ``equation``, ``prose`` or ``other`` (see the module doc)."""
    for style, pattern in STYLE_PATTERNS.items():
        if re.search(pattern, reply):
            return style
    return "other"


def demonstration(problem: Problem) -> str:
    """The SFT child's reply: the equation written out."""
    return f"{problem.a} + {problem.b} = {problem.answer}"
