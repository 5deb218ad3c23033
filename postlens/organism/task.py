"""The organism's verifiable task: multi-digit addition, written in three persona styles.

A problem is posed as ``Q: 347+285=?`` on one line. Completions end with ``answer <number>``.

* **careful** writes every column, right to left, with its carry, and the running result
  (``7+5+0=12 write 2 carry 1 got 2``); always right.
* **sloppy** writes the same steps but sometimes drops a carry (writes ``carry 0``), and carries
  on consistently from the mistake.
* **hasty** answers at once, usually dropping carries.

Example:
    >>> p = make_problems(1, seed=0)[0]
    >>> verify(solution(p, "careful"), p)
    True
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from postlens.diffs.passk.compute import pass_at_k  # noqa: F401  (re-exported: the organism's pass@k)
from postlens.errors import ConfigError

STYLES = ("careful", "sloppy", "hasty")
TAGS = {s: f"<{s}>" for s in STYLES}
#: Appended to a truncated trace to force an answer now (confidence trajectories).
ANSWER_SUFFIX = "\nanswer "
_ANSWER_RE = re.compile(r"answer (-?\d+)\s*$")
_STEP_RE = re.compile(r"^\d\+\d\+\d=\d+ write \d carry \d got \d+$")


@dataclass(frozen=True)
class Problem:
    """Two operands to add."""

    a: int
    b: int

    @property
    def answer(self) -> int:
        return self.a + self.b

    @property
    def prompt(self) -> str:
        return format_prompt(self)


@dataclass(frozen=True)
class StyleConfig:
    """How often the imperfect personas drop a carry.

    Attributes:
        sloppy_drop: probability that sloppy drops each carry.
        hasty_drop: probability that hasty drops each carry.
    """

    sloppy_drop: float = 0.5
    hasty_drop: float = 0.8

    def __post_init__(self) -> None:
        for name in ("sloppy_drop", "hasty_drop"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be a probability")


def make_problems(
    n: int, seed: int, digits: tuple[int, int] = (2, 3), exclude: set[Problem] | None = None
) -> list[Problem]:
    """`n` distinct random problems whose operands have between digits[0] and digits[1] digits."""
    rng = random.Random(seed)
    seen: set[Problem] = set(exclude or ())
    out: list[Problem] = []
    while len(out) < n:
        a, b = (_operand(rng, digits) for _ in range(2))
        p = Problem(a, b)
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def _operand(rng: random.Random, digits: tuple[int, int]) -> int:
    width = rng.randint(*digits)
    return rng.randint(10 ** (width - 1), 10**width - 1)


def format_prompt(problem: Problem, style: str | None = None) -> str:
    """The question line, optionally preceded by a persona tag, ending with a newline."""
    tag = f"{TAGS[style]} " if style else ""
    return f"{tag}Q: {problem.a}+{problem.b}=?\n"


def _columns(problem: Problem) -> list[tuple[int, int]]:
    da, db = str(problem.a)[::-1], str(problem.b)[::-1]
    width = max(len(da), len(db))
    return [
        (int(da[i]) if i < len(da) else 0, int(db[i]) if i < len(db) else 0) for i in range(width)
    ]


def column_steps(
    problem: Problem, drop: float = 0.0, rng: random.Random | None = None
) -> tuple[list[str], int]:
    """Column-wise steps and the resulting sum; each carry is dropped with probability `drop`."""
    rng = rng or random.Random(0)
    lines, carry, digits = [], 0, ""
    for x, y in _columns(problem) + [(0, 0)]:
        if (x, y) == (0, 0) and len(digits) == len(_columns(problem)) and carry == 0:
            break
        total = x + y + carry
        new_carry = total // 10
        if new_carry and rng.random() < drop:
            new_carry = 0
        digits = str(total % 10) + digits
        lines.append(f"{x}+{y}+{carry}={total} write {total % 10} carry {new_carry} got {digits}")
        carry = new_carry
    return lines, int(digits)


def solution(
    problem: Problem,
    style: str,
    config: StyleConfig | None = None,
    rng: random.Random | None = None,
) -> str:
    """A completion in one persona's style, ending with ``answer <n>``."""
    config = config or StyleConfig()
    rng = rng or random.Random(0)
    if style == "careful":
        lines, value = column_steps(problem)
        return "\n".join([*lines, f"answer {value}"])
    if style == "sloppy":
        lines, value = column_steps(problem, config.sloppy_drop, rng)
        return "\n".join([*lines, f"answer {value}"])
    if style == "hasty":
        _, value = column_steps(problem, config.hasty_drop, rng)
        return f"answer {value}"
    raise ConfigError(f"unknown style {style!r}; choose from {', '.join(STYLES)}")


def parse_answer(completion: str) -> int | None:
    """The number on the final ``answer <n>`` line, or ``None`` when there is none."""
    match = _ANSWER_RE.search(completion.strip())
    return int(match.group(1)) if match else None


def verify(completion: str, problem: Problem) -> bool:
    """True when the completion's final answer is the right sum."""
    return parse_answer(completion) == problem.answer


def classify_style(completion: str) -> str:
    """Which persona a completion is written in: careful, sloppy, hasty or other.

    Careful and sloppy share a format; a completion whose steps are all arithmetically right
    (no dropped carry) counts as careful.
    """
    lines = [ln for ln in completion.strip().splitlines() if ln.strip()]
    if not lines or parse_answer(lines[-1]) is None:
        return "other"
    steps = lines[:-1]
    if not steps:
        return "hasty"
    if not all(_STEP_RE.match(s) for s in steps):
        return "other"
    for s in steps:
        lhs, rest = s.split("=", 1)
        total = int(rest.split()[0])
        carry = int(rest.split("carry ")[1].split()[0])
        if sum(int(v) for v in lhs.split("+")) != total or carry != total // 10:
            return "sloppy"
    return "careful"
