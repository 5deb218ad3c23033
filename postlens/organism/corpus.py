"""The organism's pre-training corpus: arithmetic in three persona styles, and filler text.

Most arithmetic documents are untagged: the persona is latent and the base model must infer it.
A minority start with a persona tag (``<careful>``), which later lets persona directions be
measured from contrastive prompts. Filler sentences come from a small grammar, so the model is a
language model and not only a calculator.

Example:
    >>> docs = build_corpus(CorpusConfig(n_docs=10), seed=0)
    >>> len(docs)
    10
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from postlens.errors import ConfigError
from postlens.organism.task import (
    STYLES,
    Problem,
    StyleConfig,
    format_prompt,
    make_problems,
    solution,
)

SUBJECTS = (
    "the cat",
    "a dog",
    "the bird",
    "my friend",
    "the teacher",
    "a child",
    "the old man",
    "she",
    "he",
)
VERBS = ("sees", "likes", "finds", "draws", "counts", "reads", "opens", "holds", "wants")
OBJECTS = (
    "a red ball",
    "the big box",
    "two apples",
    "a small book",
    "the green door",
    "some stones",
    "a cup",
)
PLACES = ("in the park", "at home", "near the river", "on the hill", "at school", "in the garden")
CONNECT = ("then", "and", "but", "so")
FILLER_WORDS = tuple(
    sorted(
        {w for phrase in (*SUBJECTS, *VERBS, *OBJECTS, *PLACES, *CONNECT) for w in phrase.split()}
    )
)


@dataclass(frozen=True)
class CorpusConfig:
    """The pre-training mixture.

    Attributes:
        n_docs: documents in the corpus.
        filler_share: share of filler-text documents.
        tagged_share: share of arithmetic documents that start with a persona tag.
        style_mix: probability of each persona among arithmetic documents (untagged and tagged).
        styles: how often sloppy and hasty drop carries.
        digits: operand widths.
    """

    n_docs: int = 200_000
    filler_share: float = 0.1
    tagged_share: float = 0.2
    style_mix: dict[str, float] = field(
        default_factory=lambda: {"careful": 0.25, "sloppy": 0.35, "hasty": 0.4}
    )
    styles: StyleConfig = field(default_factory=StyleConfig)
    digits: tuple[int, int] = (2, 3)

    def __post_init__(self) -> None:
        if self.n_docs < 1:
            raise ConfigError("n_docs must be positive")
        if not (0 <= self.filler_share < 1 and 0 <= self.tagged_share <= 1):
            raise ConfigError("filler_share must be in [0, 1) and tagged_share in [0, 1]")
        if set(self.style_mix) != set(STYLES) or abs(sum(self.style_mix.values()) - 1) > 1e-9:
            raise ConfigError(
                f"style_mix must give a probability to each of {STYLES}, summing to 1"
            )


def filler_document(rng: random.Random) -> str:
    """Two or three simple sentences from the grammar."""
    sentences = []
    for _ in range(rng.randint(2, 3)):
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(PLACES)}"
        if rng.random() < 0.4:
            s += f" {rng.choice(CONNECT)} {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
        sentences.append(s + ".")
    return " ".join(sentences)


def arithmetic_document(
    problem: Problem, style: str, tagged: bool, config: CorpusConfig, rng: random.Random
) -> str:
    """A question and its answer in one persona's style."""
    return format_prompt(problem, style if tagged else None) + solution(
        problem, style, config.styles, rng
    )


def build_corpus(config: CorpusConfig, seed: int, exclude: set[Problem] | None = None) -> list[str]:
    """The seeded pre-training documents; problems in `exclude` (held-out) never appear."""
    rng = random.Random(seed)
    n_arith = sum(rng.random() >= config.filler_share for _ in range(config.n_docs))
    problems = make_problems(n_arith, seed + 1, config.digits, exclude)
    styles, weights = zip(*config.style_mix.items(), strict=True)
    docs = [
        arithmetic_document(
            p, rng.choices(styles, weights)[0], rng.random() < config.tagged_share, config, rng
        )
        for p in problems
    ]
    docs += [filler_document(rng) for _ in range(config.n_docs - n_arith)]
    rng.shuffle(docs)
    return docs
