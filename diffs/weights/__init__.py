"""Weight shifts: per-tensor statistics of the update, streamed from the checkpoints."""

from postlens.registry import Analysis

ANALYSIS = Analysis(
    name="weights",
    question="How much, and where, did post-training move the weights? Streamed from the "
    "checkpoint files, tensor by tensor.",
    config="postlens.diffs.weights.compare:WeightDiffConfig",
    result="postlens.diffs.weights.compare:FamilyWeightDiff",
    run="postlens.diffs.weights.compare:weights_of_family",
    kinds=("postlens.diffs.weights.result:WeightDiff",),
    inputs="none (the checkpoint files are read); leave it None.",
    section="postlens.reporting.sections.weights:SECTION",
    cli="weights",
)
