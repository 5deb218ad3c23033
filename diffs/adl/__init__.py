"""The Activation Difference Lens: the traces a fine-tune leaves on unrelated text."""

from postlens.registry import Analysis

ANALYSIS = Analysis(
    name="adl",
    question="What does each child's activation difference on unrelated text say about its "
    "fine-tune: the Activation Difference Lens, read through the logit lens and by steering.",
    config="postlens.diffs.adl.compute:ADLConfig",
    result="postlens.results.family:ByChild",
    child_result="postlens.diffs.adl.compute:ADLResult",
    run="postlens.diffs.adl.compute:adl_of_family",
    inputs="generic texts (a list of strings); default: the family's own, else built-in ones.",
    section="postlens.reporting.sections.adl:SECTION",
    cli="adl",
)
