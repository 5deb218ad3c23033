"""postlens: what did post-training (SFT or RL) change inside a model?

One import for a notebook: ``import postlens as pl``; ``pl.load(base, sft=..., rl=...)`` returns a
`Family` whose methods run every analysis; the config dataclasses, the result classes (every one
the analysis registry declares), the result protocol and the report are attributes of the
package. Everything heavy (torch, transformers, the backends) is
imported on first use, so ``import postlens`` stays fast and has no side effects.

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", rl="organism:rl")
    >>> fam.forks(["Q: 347+285=?"], pl.ForkConfig(sample=pl.SampleConfig(n=2, max_new_tokens=24)))["rl"].summary().n_sequences
    2
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name → the module that defines it (imported lazily, on first access).
_EXPORTS = {
    "load": "postlens.family",
    "Family": "postlens.family",
    "ModelPair": "postlens.pair",
    "SampleConfig": "postlens.sampling.generation",
    "ForkConfig": "postlens.diffs.forks.compute",
    "ActivationConfig": "postlens.diffs.activations.compute",
    "WeightDiffConfig": "postlens.diffs.weights.compare",
    "PassKConfig": "postlens.diffs.passk.compute",
    "PersonaConfig": "postlens.diffs.personas.analysis",
    "PersonaInputs": "postlens.diffs.personas.analysis",
    "ConfidenceConfig": "postlens.probes.confidence.result",
    "TrajectoryConfig": "postlens.probes.confidence.trajectory",
    "CrosscoderConfig": "postlens.diffs.crosscoder.model",
    "SteerConfig": "postlens.diffs.causal.steer",
    "ExtrapolateConfig": "postlens.diffs.causal.extrapolate",
    "SubstitutionConfig": "postlens.diffs.causal.substitution",
    "ADLConfig": "postlens.diffs.adl.compute",
    "ForkTrainConfig": "postlens.diffs.causal.fork_training",
    "link_personas": "postlens.diffs.crosscoder.links",
    "link_forks": "postlens.diffs.crosscoder.links",
    "ReportConfig": "postlens.reporting",
    "Report": "postlens.reporting",
    "report": "postlens.reporting",
    "Result": "postlens.results.protocol",
    "ByChild": "postlens.results.family",
    "load_result": "postlens.results.family",
    "score_forks": "postlens.diffs.forks.compute",
    "activation_shifts": "postlens.diffs.activations.compute",
    "compare_weights": "postlens.diffs.weights.compare",
    "compare_children": "postlens.diffs.weights.compare",
    "pass_at_k_curves": "postlens.diffs.passk.compute",
    "pass_at_k": "postlens.diffs.passk.compute",
    "analyse_personas": "postlens.diffs.personas.analysis",
    "prompt_records": "postlens.data.inputs",
    "verifiable_problems": "postlens.data.inputs",
    "read_prompts": "postlens.data.prompts",
    "PromptRecord": "postlens.data.prompts",
    "PostlensError": "postlens.errors",
    "SpecError": "postlens.errors",
    "CheckpointError": "postlens.errors",
    "IncompatibleModelsError": "postlens.errors",
    "InputFileError": "postlens.errors",
    "ConfigError": "postlens.errors",
    "NotSupportedError": "postlens.errors",
    "ProbeCallback": "postlens.probes.training.callbacks",
    "ProbeMonitor": "postlens.probes.training.callbacks",
    "ProbeReward": "postlens.probes.training.callbacks",
    "ConfidenceMonitor": "postlens.probes.training.monitor",
    "PersonaMonitor": "postlens.probes.personas.projections",
    "Inputs": "postlens.data.defaults",
    "InputProvider": "postlens.data.defaults",
    "Problem": "postlens.data.verifiers",
    "analyses": "postlens.registry",
}

__all__ = [*_EXPORTS, "__version__"]


def _declared() -> dict[str, str]:
    """Config and result classes named by the analysis registry: name → ``"module:Class"``."""
    from postlens.registry import analyses

    out = {}
    for a in analyses():
        for path in (a.config, a.result, a.child_result, *a.kinds):
            if path is not None:
                out[path.rpartition(":")[2]] = path
    return out


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        return getattr(importlib.import_module(module), name)
    declared = _declared().get(name) if not name.startswith("_") else None
    if declared is None:
        raise AttributeError(f"module 'postlens' has no attribute {name!r}")
    from postlens.registry import resolve

    return resolve(declared)


def __dir__() -> list[str]:
    return sorted({*__all__, *_declared()})
