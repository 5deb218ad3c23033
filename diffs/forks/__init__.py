"""Fork tokens: where a post-trained model parts from its base, and whether the base's entropy finds them."""

from postlens.registry import Analysis

ANALYSIS = Analysis(
    name="forks",
    question="Where do the base and each child disagree token by token, and does the base's own "
    "entropy find those places?",
    config="postlens.diffs.forks.result:ForkConfig",
    result="postlens.results.family:ByChild",
    child_result="postlens.diffs.forks.result:ForkResult",
    run="postlens.diffs.forks.compute:forks_of_family",
    inputs="prompts (sampled from each child with ``config.sample``) or the sequences "
    "``fam.sample`` returned; default: the family's own problems.",
    section="postlens.reporting.sections.forks:SECTION",
    cli="forks",
)
