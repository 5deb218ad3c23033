"""Reasoning traces of the organism's models on its held-out problems, for confidence probes.

Each model answers the same problems (sampled, seeded); its completion is split into the
reasoning and the final ``answer N`` line, the reasoning kept as the trace, the organism's
verifier as the check and the persona style the model wrote in as the label.

Example:
    >>> import postlens as pl
    >>> from postlens.probes.confidence.result import ConfidenceConfig
    >>> fam = pl.load("organism:base", rl="organism:rl")
    >>> cfg = ConfidenceConfig(pl.SampleConfig(limit=3, max_new_tokens=60))
    >>> problems = fam.inputs.problems(3, PROBLEM_OFFSET)
    >>> traces = organism_traces({"rl": fam["rl"].post}, fam.tokenizer, cfg, problems)
    >>> len(traces["rl"]), traces["rl"][0].label in ("careful", "sloppy", "hasty", "other")
    (3, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from postlens.data.verifiers import Problem
from postlens.probes.confidence.trajectory import Trace

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer

#: Held-out problems of the confidence analysis: another set than pass@k's (offset 7).
PROBLEM_OFFSET = 7


def organism_traces(
    models: Mapping[str, Any], tokenizer: Tokenizer, config: Any, problems: Sequence[Problem]
) -> dict[str, list[Trace]]:
    """Model name → one trace per problem, sampled from that model.

    Args:
        models: model name → `Backend` (e.g. ``fam.models()``).
        tokenizer: their tokenizer.
        config: a `ConfidenceConfig` (its sampling's `max_new_tokens` and `seed` are read).
        problems: the held-out problems traced (`PROBLEM_OFFSET`'s set).
    """
    from postlens.organism.task import classify_style
    from postlens.sampling.generation import sample_completions

    prompts = [p.prompt for p in problems]
    out = {}
    for name, backend in models.items():
        done = sample_completions(
            backend, tokenizer, prompts, max_new_tokens=config.sample.max_new_tokens, seed=config.sample.seed,
            progress=False,
        )  # fmt: skip
        out[name] = [
            # The final "answer N" line is what the suffix forces: it is not part of the trace.
            Trace(
                p.prompt,
                s.completion.rsplit("answer", 1)[0].rstrip("\n"),
                p.verify,
                classify_style(s.completion),
            )  # fmt: skip
            for p, s in zip(problems, done, strict=True)
        ]
    return out
