"""Crosscoders: one sparse dictionary over several models' activations, and what each latent belongs to."""

from postlens.registry import Analysis

_TEXTS = "training texts (a list of strings); default: the family's corpus."
ANALYSES = (
    Analysis(
        name="crosscoder",
        question="Which latents of a dictionary shared by the base and a child belong to the "
        "child only: one crosscoder per child, its latents classed and checked by latent "
        "scaling.",
        config="postlens.diffs.crosscoder.model:CrosscoderConfig",
        result="postlens.results.family:ByChild",
        child_result="postlens.diffs.crosscoder.result:CrosscoderResult",
        run="postlens.diffs.crosscoder.links:crosscoder_of_family",
        inputs=_TEXTS,
        section="postlens.reporting.sections.crosscoder:SECTION",
        cli="crosscoder",
    ),
    Analysis(
        name="crosscoder_three_way",
        question="One crosscoder over the base and every child in one latent space: which "
        "latents each child has alone, and which they share.",
        config="postlens.diffs.crosscoder.model:CrosscoderConfig",
        result="postlens.diffs.crosscoder.result:CrosscoderResult",
        run="postlens.diffs.crosscoder.links:three_way_of_family",
        inputs=_TEXTS,
        command="crosscoder",  # ``postlens crosscoder BASE POST --other CHILD``
        cli="crosscoder",
    ),
)
