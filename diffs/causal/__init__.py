"""Causal tests: steering, weight extrapolation, fork substitution and fork-targeted training."""

from postlens.registry import Analysis

_PROBLEMS = "verifiable problems (records with 'prompt' and 'answer'); default: the family's own."
ANALYSES = (
    Analysis(
        name="steer",
        question="Does steering the base along a direction (a persona's, or your own) reproduce "
        "what SFT or RL did: pass rate, label shares and KL to every model per α.",
        config="postlens.diffs.causal.steer:SteerConfig",
        result="postlens.diffs.causal.sweep:SweepResult",
        run="postlens.diffs.causal.steer:steer_of_family",
        inputs=_PROBLEMS,
        section="postlens.reporting.sections.steer:STEER",
        cli="steer",
    ),
    Analysis(
        name="extrapolate",
        question="What do models at θ_start + α·(θ_child − θ_start) do: behaviour and KL per α.",
        config="postlens.diffs.causal.extrapolate:ExtrapolateConfig",
        result="postlens.diffs.causal.sweep:ExtrapolationResult",
        run="postlens.diffs.causal.extrapolate:extrapolate_of_family",
        inputs=_PROBLEMS,
        section="postlens.reporting.sections.steer:EXTRAPOLATE",
        cli="extrapolate",
    ),
    Analysis(
        name="substitute",
        question="Is each child's gain at the base's high-entropy forks: the base decoding with "
        "the child's token wherever its own entropy exceeds τ.",
        config="postlens.diffs.causal.substitution:SubstitutionConfig",
        result="postlens.results.family:ByChild",
        child_result="postlens.diffs.causal.substitution:SubstitutionResult",
        run="postlens.diffs.causal.substitution:substitute_of_family",
        inputs=_PROBLEMS,
        section="postlens.reporting.sections.substitution:SECTION",
        cli="substitute",
    ),
    Analysis(
        name="fork_train",
        question="Does training the base only at each child's forks recover the child's gain, "
        "against training at random positions?",
        config="postlens.diffs.causal.fork_training:ForkTrainConfig",
        result="postlens.results.family:ByChild",
        child_result="postlens.diffs.causal.fork_training:ForkTrainResult",
        run="postlens.diffs.causal.fork_training:fork_train_of_family",
        inputs=_PROBLEMS,
        section="postlens.reporting.sections.fork_train:SECTION",
        cli="fork_train",
    ),
)
