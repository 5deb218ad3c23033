"""The organism's inputs for persona analysis: tagged sets, untagged prompts, a corpus sample.

Example:
    >>> inputs = organism_persona_inputs(n_per_persona=40, n_prompts=100)
    >>> sorted(inputs.sets), len(inputs.prompts)
    (['careful', 'hasty', 'sloppy'], 100)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from postlens.errors import ConfigError

if TYPE_CHECKING:
    from postlens.probes.personas.directions import PersonaInputs, Text


def organism_persona_inputs(
    n_per_persona: int = 80, n_prompts: int = 200, seed: int = 0
) -> PersonaInputs:
    """Persona sets, untagged prompts and a corpus sample, all from held-out problems.

    Persona sets: the same questions under each persona's tag, as ``(tag, question)`` pairs, so
    that only the question's tokens are averaged and the sets differ by the tag alone: what a
    direction or a latent separates is the persona the model infers, not the text. Untagged
    prompts: other held-out questions without a tag, as ``("", question)`` (BOS left out).
    Corpus: a sample of the pre-training mixture, for the SAE's quality and top contexts.

    Args:
        n_per_persona: questions in each persona set.
        n_prompts: untagged questions (the corpus sample has twice as many documents).
        seed: which held-out questions and corpus documents.
    """
    if n_per_persona < 2 or n_prompts < 1:
        raise ConfigError("need n_per_persona >= 2 and n_prompts >= 1")
    from postlens.organism.corpus import CorpusConfig, build_corpus
    from postlens.organism.task import STYLES, TAGS, format_prompt, make_problems
    from postlens.organism.train import HELD_OUT_SEED
    from postlens.probes.personas.directions import PersonaInputs

    problems = make_problems(n_per_persona + n_prompts, HELD_OUT_SEED + 1 + seed)
    tagged, plain = problems[:n_per_persona], problems[n_per_persona:]
    sets: dict[str, list[Text]] = {
        s: [(TAGS[s], format_prompt(p, s).removeprefix(TAGS[s])) for p in tagged] for s in STYLES
    }
    prompts: list[Text] = [("", format_prompt(p)) for p in plain]
    corpus = build_corpus(CorpusConfig(n_docs=2 * n_prompts), seed=654 + seed)
    return PersonaInputs(sets, prompts, corpus)
