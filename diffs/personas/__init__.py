"""The persona analysis of a family: directions on the base, each child's shift along them, SAE latents."""

from postlens.registry import Analysis

ANALYSIS = Analysis(
    name="personas",
    question="Which persona of the base did each child select: persona directions, each "
    "model's projection on them, and the SAE latents each child moved.",
    config="postlens.diffs.personas.analysis:PersonaConfig",
    result="postlens.diffs.personas.result:PersonaAnalysis",
    run="postlens.diffs.personas.analysis:personas_of_family",
    inputs="a `PersonaInputs` (persona-tagged sets, untagged prompts, corpus); default: the "
    "family's own persona sets.",
    section="postlens.reporting.sections.personas:SECTION",
    cli="personas",
)
