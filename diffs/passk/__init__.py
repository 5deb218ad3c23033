"""The reasoning boundary: unbiased pass@k curves, bootstrap intervals and the crossing k."""

from postlens.registry import Analysis

ANALYSIS = Analysis(
    name="passk",
    question="Did post-training widen the set of problems solved, or only sharpen it: pass@k "
    "of the base and every child.",
    config="postlens.diffs.passk.compute:PassKConfig",
    result="postlens.diffs.passk.compute:PassAtKResult",
    run="postlens.diffs.passk.compute:passk_of_family",
    inputs="verifiable problems (records with 'prompt' and 'answer', a JSONL file or a list); "
    "default: the family's own problems.",
    section="postlens.reporting.sections.passk:SECTION",
    cli="passk",
)
