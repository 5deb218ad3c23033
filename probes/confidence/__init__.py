"""Confidence: behavioural trajectories and hidden-state probes that read them."""

from postlens.registry import Analysis

ANALYSIS = Analysis(
    name="confidence",
    question="How early does each model become confident of its answer: behavioural "
    "confidence trajectories, and the per-layer probes that read them from hidden states.",
    config="postlens.probes.confidence.result:ConfidenceConfig",
    result="postlens.probes.confidence.result:ConfidenceResult",
    run="postlens.probes.confidence.result:confidence_of_family",
    inputs="model name → its `Trace` list, or verifiable problems (records with 'prompt' and "
    "'answer') to sample traces on; default: the family's own traces, else its problems.",
    section="postlens.reporting.sections.confidence:SECTION",
    cli="confidence",
)
