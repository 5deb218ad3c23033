"""Steering the base along a direction: does it reproduce what SFT or RL did?

See docs/science.md, *Steering*.

Persona vectors (arXiv 2507.21509) steer a model by adding α·v to its residual stream at one
layer. `steer_sweep` does it to the base for a sweep of α, along a persona direction of the base
(`postlens.probes.personas.directions`) or any vector, and measures per α the behaviour (the verifier's
pass rate, the share of each label a classifier gives the completions: on the organism its
persona styles) and the on-policy output KL to the base and to each child
(`postlens.diffs.causal.sweep`). If post-training selected a persona the base already had,
some α should bring the base's behaviour and outputs close to the child's.

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", rl="organism:rl")
    >>> cfg = SteerConfig(alphas=(0.0, 4.0), sample=pl.SampleConfig(n=1, limit=2, max_new_tokens=24))
    >>> res = fam.steer(config=cfg)
    >>> [r.alpha for r in res.rows], sorted(res.rows[0].kl)
    ([0.0, 4.0], ['base', 'rl'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jaxtyping import Float
from torch import Tensor

from postlens.diffs.causal.sweep import (
    Classifier,
    SweepResult,
    SweepRow,
    behaviour,
    completion_logprobs,
    on_policy_kl,
)
from postlens.errors import ConfigError, InputFileError
from postlens.sampling.generation import SampleConfig, sample_completions
from postlens.sampling.steering import SITES, WHERE, steering

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer


@dataclass(frozen=True)
class SteerConfig:
    """Settings of a steering sweep.

    Attributes:
        alphas: the multiples of the (unit) direction added.
        persona: the persona direction of the base to steer along (when no vector is given).
        vector: a direction of your own instead: a tensor, or a file holding one (``.pt``
            read with ``weights_only``, ``.npy``); then `layer` is required.
        layer: the steered block (default: the persona direction's best layer).
        site: ``hook_resid_post`` or ``hook_resid_pre``.
        where: ``"all"`` positions or only ``"generated"`` ones.
        sample: how completions are sampled: `n` per problem and α, `limit` problems (the
            first ones), length, temperature, seed.
    """

    alphas: tuple[float, ...] = (-8.0, -4.0, 0.0, 4.0, 8.0, 16.0)
    persona: str = "careful"
    vector: Any = field(default=None, compare=False, repr=False)
    layer: int | None = None
    site: str = "hook_resid_post"
    where: str = "all"
    sample: SampleConfig = field(default_factory=lambda: SampleConfig(n=4, limit=16))

    def __post_init__(self) -> None:
        if not self.alphas:
            raise ConfigError("give at least one alpha")
        if self.layer is not None and self.layer < 0:
            raise ConfigError(f"layer must be >= 0, got {self.layer}")
        if self.site not in SITES:
            raise ConfigError(f"site must be one of {', '.join(SITES)}, got {self.site!r}")
        if self.where not in WHERE:
            raise ConfigError(f"where must be one of {', '.join(WHERE)}, got {self.where!r}")


def read_vector(path: Path) -> Tensor:
    """A steering vector from a ``.pt`` (read with ``weights_only``) or ``.npy`` file.

    Raises:
        InputFileError: the file is missing, or holds no tensor.
    """
    import torch

    if not path.is_file():
        raise InputFileError(f"{path}: file not found")
    if path.suffix == ".npy":
        import numpy as np

        found = torch.from_numpy(np.load(path, allow_pickle=False))
    else:
        found = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(found, Tensor):
        raise InputFileError(f"{path}: holds a {type(found).__name__}, not a tensor")
    return found.float().flatten()


def persona_vector(family: Any, persona: str, seed: int = 0) -> tuple[Tensor, int]:
    """The base's unit direction of `persona` at its best layer, and that layer.

    Fitted one persona against the others on the persona-tagged sets (the organism's own
    when the base is the organism), without the SAE part of ``fam.personas()``.
    """
    from postlens.diffs.personas.analysis import PersonaConfig, persona_inputs
    from postlens.probes.personas.directions import one_vs_rest_directions

    if not family.inputs.provides("personas"):
        raise InputFileError(
            f"steering along persona {persona!r} needs this family's persona-tagged sets, and it "
            "has none: give a direction instead (postlens steer BASE CHILD --vector FILE --layer "
            "L; SteerConfig(vector=..., layer=...)), or persona sets (pl.load(..., inputs="
            "pl.Inputs(personas=...)) or a postlens-inputs.json beside the base)"
        )
    inputs = persona_inputs(family.inputs, PersonaConfig(sae=None, n_per_persona=40))
    found = one_vs_rest_directions(family.base, family.tokenizer, inputs.sets, seed=seed)
    if persona not in found.personas:
        raise ConfigError(f"no persona {persona!r}; the sets have {', '.join(found.personas)}")
    best = found.best()[persona]
    return best.vector.float(), best.layer


def steer_sweep(
    base: Any,
    others: Mapping[str, Any],
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    verifiers: Sequence[Any],
    vector: Float[Tensor, " d_model"],
    layer: int,
    config: SteerConfig | None = None,
    classifier: Classifier | None = None,
    axis: str = "vector",
) -> SweepResult:
    """Sample the base steered by α·`vector` at `layer` for each α; behaviour and KL per α.

    Args:
        base: the base's backend (steered).
        others: model name → backend the KL is measured to (e.g. the base and every child).
        tokenizer: the shared tokenizer.
        prompts, verifiers: the problems, one verifier each.
        vector: the direction (used as given; persona directions are unit vectors).
        layer: the steered block.
        config: alphas, site, where and sampling (`SteerConfig`).
        classifier: completion → label (e.g. the family's, ``fam.inputs.classifier()``).
        axis: the name of the direction, for the result.
    """
    cfg = config or SteerConfig()
    hf = {name: b.hf_model for name, b in others.items()}
    rows = []
    for alpha in cfg.alphas:
        with steering(base, vector, layer, alpha, site=cfg.site, where=cfg.where) as state:
            samples = sample_completions(base, tokenizer, prompts, label=f"α={alpha:g}",
                                         progress=False, n=cfg.sample.n,
                                         **cfg.sample.generate_kwargs())  # fmt: skip
            own = [completion_logprobs(base.hf_model, s, state) for s in samples]
        passed, shares = behaviour(samples, verifiers, cfg.sample.n, classifier)
        rows.append(SweepRow(float(alpha), passed, shares, on_policy_kl(own, hf, samples)))
    settings = {"n": cfg.sample.n, "n_problems": len(prompts), "site": cfg.site, "where": cfg.where,
                "temperature": cfg.sample.temperature, "seed": cfg.sample.seed,
                "max_new_tokens": cfg.sample.max_new_tokens}  # fmt: skip
    return SweepResult(axis, layer, rows, settings)


def steer_of_family(family: Any, inputs: Any, config: SteerConfig, progress: bool) -> SweepResult:
    """``fam.steer``: `steer_sweep` of the family's base on problems, with its classifier.

    The direction is ``config.vector`` or the base's persona direction ``config.persona``;
    `inputs` are verifiable problems (default: the family's own).
    """
    axis, layer, vector = "vector", config.layer, config.vector
    if vector is None:
        vector, best = persona_vector(family, config.persona, config.sample.seed)
        axis, layer = config.persona, best if config.layer is None else config.layer
    elif isinstance(vector, str | Path):
        vector = read_vector(Path(vector))
    if layer is None:
        raise ConfigError("steering a given vector needs a layer (SteerConfig(layer=...))")
    prompts, verifiers = family.chat_problems(inputs, config.sample.limit)
    return steer_sweep(family.base, family.models(), family.tokenizer, prompts, verifiers,
                       vector, layer, config, family.inputs.classifier(), axis)  # fmt: skip
