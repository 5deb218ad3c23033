"""Activation shifts: per-layer residual differences, logit-lens KL and patching."""

from postlens.registry import Analysis

ANALYSIS = Analysis(
    name="activations",
    question="In which layers does each child part from its base: residual cosine and norm, "
    "logit-lens KL, and how much of the output KL patching one layer recovers?",
    config="postlens.diffs.activations.compute:ActivationConfig",
    result="postlens.results.family:ByChild",
    child_result="postlens.diffs.activations.result:ActivationResult",
    run="postlens.diffs.activations.compute:activations_of_family",
    inputs="prompts (sampled from each child with ``config.sample``) or the sequences "
    "``fam.sample`` returned; default: the family's own problems.",
    section="postlens.reporting.sections.activations:SECTION",
    cli="activations",
)
