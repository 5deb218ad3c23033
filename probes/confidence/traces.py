"""Reasoning traces of any family with verifiable problems, for the confidence analysis.

Each model answers the same problems (one sample each, seeded, prompts formatted as the pair
reads them). The reply up to its last number is the trace; that number is the answer the
trajectory then forces. The answer is forced with `ANSWER_SUFFIX`, which any language model
reads as "state the answer now", and the problem's verifier checks ``suffix + continuation``.

The split at the last number and the suffix are our choices for replies that state their
answer as a number (the task families postlens ships); a family with another answer format
gives its own traces (``fam.confidence({model: [Trace(...)]})``).

Example:
    >>> split_answer("So 8 + 14 = 22.")
    'So 8 + 14 ='
    >>> split_answer("no number here")
    'no number here'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from postlens.data.verifiers import last_number
from postlens.probes.confidence.trajectory import Trace

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer

#: Appended after a cut to force the answer now (a plain-text cue every LM reads).
ANSWER_SUFFIX = "\nThe answer is "


def split_answer(reply: str) -> str:
    """The reasoning of a reply: the text before its last number, as the ``last-number``
    verifier reads it (all of the reply when it has none)."""
    found = last_number(reply)
    return reply[: found.start()].rstrip() if found else reply.rstrip()


def problem_traces(
    models: Mapping[str, Any],
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    verifiers: Sequence[Callable[[str], bool]],
    config: Any,
    classifier: Callable[[str], str] | None = None,
) -> dict[str, list[Trace]]:
    """Model name → one trace per problem, sampled from that model.

    Args:
        models: model name → `Backend` (``fam.models()``).
        tokenizer: their tokenizer.
        prompts, verifiers: the problems, prompts formatted for the models.
        config: a `ConfidenceConfig` (its sampling's `max_new_tokens` and `seed` are read).
        classifier: reply → label (the family's strategy or style), for the per-label figures.
    """
    from postlens.sampling.generation import sample_completions

    out = {}
    for name, backend in models.items():
        replies = sample_completions(
            backend, tokenizer, list(prompts), max_new_tokens=config.sample.max_new_tokens,
            seed=config.sample.seed, progress=False,
        )  # fmt: skip
        out[name] = [
            Trace(
                p,
                split_answer(s.completion),
                v,
                classifier(s.completion) if classifier else "",
                bool(v(s.completion)),
                ANSWER_SUFFIX,
            )  # fmt: skip
            for p, v, s in zip(prompts, verifiers, replies, strict=True)
        ]
    return out
