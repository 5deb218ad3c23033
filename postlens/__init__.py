"""postlens: what did post-training (SFT or RL) change inside a model?

One import for a notebook: ``import postlens as pl``; ``pl.load(base, sft=..., rl=...)`` returns a
`Family` whose methods run every analysis; the config dataclasses, the result protocol and the
report are attributes of the package. Everything heavy (torch, transformers, the backends) is
imported on first use, so ``import postlens`` stays fast and has no side effects.

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", rl="organism:rl")
    >>> fam.forks(["Q: 347 + 285 = ?\\n"], sample=pl.SampleConfig(n=2, max_new_tokens=24))["rl"].summary().n_sequences
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
    "SampleConfig": "postlens.generation",
    "ForkConfig": "postlens.diffs.forks",
    "ActivationConfig": "postlens.diffs.activations",
    "WeightDiffConfig": "postlens.diffs.weights",
    "PassKConfig": "postlens.diffs.passk",
    "PersonaConfig": "postlens.diffs.persona_analysis",
    "PersonaInputs": "postlens.diffs.persona_analysis",
    "ConfidenceConfig": "postlens.probes.confidence_result",
    "CrosscoderConfig": "postlens.diffs.crosscoder",
    "SteerConfig": "postlens.diffs.steer",
    "ExtrapolateConfig": "postlens.diffs.extrapolate",
    "SubstitutionConfig": "postlens.diffs.substitution",
    "ADLConfig": "postlens.diffs.adl",
    "ForkTrainConfig": "postlens.diffs.fork_training",
    "link_personas": "postlens.diffs.crosscoder_links",
    "link_forks": "postlens.diffs.crosscoder_links",
    "ReportConfig": "postlens.reporting",
    "Report": "postlens.reporting",
    "report": "postlens.reporting",
    "Result": "postlens.protocol",
    "ByChild": "postlens.results",
    "load_result": "postlens.results",
    "score_forks": "postlens.diffs.forks",
    "activation_shifts": "postlens.diffs.activations",
    "compare_weights": "postlens.diffs.weights",
    "compare_children": "postlens.diffs.weights",
    "pass_at_k_curves": "postlens.diffs.passk",
    "pass_at_k": "postlens.diffs.passk",
    "analyse_personas": "postlens.diffs.persona_analysis",
    "prompt_records": "postlens.inputs",
    "verifiable_problems": "postlens.inputs",
    "read_prompts": "postlens.prompts",
    "PromptRecord": "postlens.prompts",
    "PostlensError": "postlens.errors",
    "ProbeCallback": "postlens.probes.callbacks",
    "ProbeMonitor": "postlens.probes.callbacks",
    "ProbeReward": "postlens.probes.callbacks",
    "ConfidenceMonitor": "postlens.probes.monitor",
    "PersonaMonitor": "postlens.probes.persona_projections",
    "organism_texts": "postlens.diffs.crosscoder_links",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'postlens' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
