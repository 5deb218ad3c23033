"""The organism's default inputs, registered for ``organism:`` specs (`postlens.data.defaults`).

Every family whose base is ``organism:<name>`` gets these unless the user gives others:
held-out arithmetic problems with the organism's own verifier, its style classifier (careful,
sloppy, hasty, other), filler documents as generic text, a sample of its pre-training mixture
as corpus, persona-tagged sets, reasoning traces for the confidence probes, and the SAE shipped
with it.

Example:
    >>> p = OrganismInputs("organism:base")
    >>> problems = p.problems(2)
    >>> problems[0].prompt.startswith("Q: "), problems[0].verify("answer 0")
    (True, False)
    >>> p.classifier()("answer 4")
    'hasty'
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from postlens.data.defaults import DEFAULT_PROBLEMS, Classifier, InputProvider
from postlens.data.verifiers import Problem

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer


class OrganismInputs(InputProvider):
    """The organism's problems, classifier, texts, corpus, persona sets, traces and SAE."""

    source = "the organism"

    def __init__(self, spec: str = "organism:base") -> None:
        self.spec = spec

    def problems(self, n: int, offset: int = 0) -> list[Problem]:
        from postlens.organism.task import make_problems, verify
        from postlens.organism.train import HELD_OUT_SEED

        return [
            Problem(p.prompt, functools.partial(_check, verify, p), str(p.answer))
            for p in make_problems(n, HELD_OUT_SEED + offset)
        ]

    def classifier(self) -> Classifier:
        from postlens.organism.task import classify_style

        return classify_style

    def texts(self, n: int, seed: int = 0) -> list[str]:
        from postlens.organism.corpus import filler_document

        rng = random.Random(seed)
        return [filler_document(rng) for _ in range(n)]

    def corpus(self, n: int, seed: int = 11) -> list[str]:
        from postlens.organism.corpus import CorpusConfig, build_corpus

        return build_corpus(CorpusConfig(n_docs=n), seed=seed)

    def personas(self, n_per_persona: int, n_prompts: int, seed: int = 0) -> Any:
        from postlens.organism.persona_sets import organism_persona_inputs

        return organism_persona_inputs(n_per_persona, n_prompts, seed)

    def traces(self, models: Mapping[str, Any], tokenizer: Tokenizer, config: Any) -> Any:
        from postlens.organism.traces import PROBLEM_OFFSET, organism_traces

        problems = self.problems(config.sample.limit or DEFAULT_PROBLEMS, PROBLEM_OFFSET)
        return organism_traces(models, tokenizer, config, problems)

    def sae(self) -> str | None:
        from postlens.models.specs import ORGANISM_ROOT

        path = ORGANISM_ROOT / "sae"
        return str(path) if path.is_dir() else None


def organism_inputs(spec: str) -> InputProvider:
    """The provider of an ``organism:`` spec: the toy organism's defaults for its own models; a
    built organism (``organism:smol-*``) declares its own in its base folder's inputs file.

    Example:
        >>> organism_inputs("organism:rl").source, organism_inputs("organism:smol-base").source
        ('the organism', 'nothing')
    """
    from postlens.models.specs import ORGANISM_NAMES, ORGANISM_PREFIX

    return (
        OrganismInputs(spec)
        if spec.removeprefix(ORGANISM_PREFIX) in ORGANISM_NAMES
        else InputProvider()
    )


def _check(verify: Any, problem: Any, completion: str) -> bool:
    return verify(completion, problem)
