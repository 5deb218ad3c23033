"""Weight extrapolation: models at θ_from + α·(θ_to − θ_from), their behaviour and KL.

See docs/science.md, *Weight extrapolation and amplification*.

α = 0 is the `from` model, α = 1 the `to` model, α > 1 amplifies the update and α < 0 reverses
it; `from`/`to` are the base and a child, or two children (e.g. sft → rl). The models along the
sweep are built lazily, tensor by tensor, into ONE working model (a fresh model of the base's
config): each parameter is written as ``torch.lerp(θ_from, θ_to, α)`` (exact at α = 0 and
α = 1), so beyond the models already loaded only the model being run is allocated.

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", rl="organism:rl")
    >>> small = pl.SampleConfig(n=1, limit=2, max_new_tokens=24)
    >>> cfg = ExtrapolateConfig(child="rl", alphas=(0.0, 1.0), sample=small)
    >>> res = fam.extrapolate(config=cfg)
    >>> res.axis, res.rows[0].kl["base"], res.rows[1].kl["rl"]
    ('base→rl', 0.0, 0.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from postlens.backends.base import Backend, ModelLike
from postlens.diffs.causal.sweep import (
    Classifier,
    ExtrapolationResult,
    SweepRow,
    behaviour,
    completion_logprobs,
    on_policy_kl,
)
from postlens.errors import ConfigError, IncompatibleModelsError
from postlens.sampling.generation import PlainSampler, SampleConfig, sample_completions

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer


@dataclass(frozen=True)
class ExtrapolateConfig:
    """Settings of a weight-extrapolation sweep.

    Attributes:
        alphas: the multiples of the update θ_to − θ_from.
        start: the model at α = 0: ``"base"`` or a child's name.
        child: the model at α = 1 (default: the family's last child).
        sample: how completions are sampled: `n` per problem and α, `limit` problems (the
            first ones), length, temperature, seed.
    """

    alphas: tuple[float, ...] = (-0.5, 0.0, 0.5, 1.0, 1.5, 2.0)
    start: str = "base"
    child: str | None = None
    sample: SampleConfig = field(default_factory=lambda: SampleConfig(n=4, limit=16))

    def __post_init__(self) -> None:
        if not self.alphas:
            raise ConfigError("give at least one alpha")


def plain_parameters(model: ModelLike) -> dict[str, torch.Tensor]:
    """A causal LM's parameters by their plain transformers names.

    A backend gives them itself (`Backend.plain_parameters`: TransformerBridge renames some
    modules of the model it wraps). For a bare model, the ``_original_component`` segment that
    TransformerBridge nests each module under is dropped.
    """
    if isinstance(model, Backend):
        return model.plain_parameters()
    return {name.replace("._original_component", ""): p for name, p in model.named_parameters()}


def working_model(like: Any) -> Any:
    """A fresh causal LM of `like`'s config, dtype and device (the one model a sweep runs).

    Built in `like`'s dtype rather than cast to it, so that its buffers keep the dtype
    transformers gives them: a cast would round the rotary frequencies to bfloat16, and the
    model at α = 0 would no longer be the start model.
    """
    from transformers import AutoModelForCausalLM

    p = next(like.parameters())
    model = AutoModelForCausalLM.from_config(like.config, dtype=p.dtype).to(p.device)
    return model.eval()


@torch.no_grad()
def set_extrapolated(model: Any, start: Any, end: Any, alpha: float) -> Any:
    """Write θ_start + α·(θ_end − θ_start) into `model`, one tensor at a time; returns it.

    Example:
        >>> from postlens.testing import tiny_model
        >>> a, b = tiny_model(seed=0)[0], tiny_model(seed=1)[0]
        >>> m = set_extrapolated(working_model(a), a, b, 1.0)
        >>> all(torch.equal(x, y) for x, y in zip(m.parameters(), b.parameters()))
        True
    """
    src, dst = plain_parameters(start), plain_parameters(end)
    for name, param in plain_parameters(model).items():
        if name not in src or name not in dst or src[name].shape != dst[name].shape:
            raise IncompatibleModelsError(f"{name}: not in both models with one shape")
        param.copy_(torch.lerp(src[name], dst[name].to(src[name].device), float(alpha)))
    return model


def extrapolation_sweep(
    start: Any,
    end: Any,
    others: Mapping[str, Any],
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    verifiers: Sequence[Any],
    config: ExtrapolateConfig | None = None,
    classifier: Classifier | None = None,
    axis: str = "from→to",
) -> ExtrapolationResult:
    """Sample the model at each α; behaviour and on-policy KL to each of `others`.

    Args:
        start, end: backends (or Hugging Face causal LMs) at α = 0 and α = 1.
        others: model name → backend or causal LM the KL is measured to.
        tokenizer: the shared tokenizer.
        prompts, verifiers: the problems, one verifier each.
        config: alphas and sampling (`ExtrapolateConfig`).
        classifier: completion → label.
        axis: the sweep's name, for the result.
    """
    cfg = config or ExtrapolateConfig()
    s_hf = getattr(start, "hf_model", start)
    hf = {name: getattr(m, "hf_model", m) for name, m in others.items()}
    model, rows = working_model(s_hf), []
    runner: Any = PlainSampler(model, tokenizer)
    for alpha in cfg.alphas:
        set_extrapolated(model, start, end, alpha)
        samples = sample_completions(runner, tokenizer, prompts, n=cfg.sample.n, seed=cfg.sample.seed,
                                     max_new_tokens=cfg.sample.max_new_tokens,
                                     temperature=cfg.sample.temperature, progress=False)  # fmt: skip
        own = [completion_logprobs(model, s) for s in samples]
        passed, shares = behaviour(samples, verifiers, cfg.sample.n, classifier)
        rows.append(SweepRow(float(alpha), passed, shares, on_policy_kl(own, hf, samples)))
    settings = {"n": cfg.sample.n, "n_problems": len(prompts), "temperature": cfg.sample.temperature,
                "seed": cfg.sample.seed, "max_new_tokens": cfg.sample.max_new_tokens}  # fmt: skip
    return ExtrapolationResult(axis, None, rows, settings)


def extrapolate_of_family(
    family: Any, inputs: Any, config: ExtrapolateConfig, progress: bool
) -> ExtrapolationResult:
    """``fam.extrapolate``: `extrapolation_sweep` from ``config.start`` to ``config.child``.

    `inputs` are verifiable problems (default: the family's own); behaviour is labelled with
    the family's classifier.
    """
    models, child = family.models(), config.child or family.children[-1]
    for name in (config.start, child):
        if name not in models:
            raise ConfigError(f"no model {name!r}; this family has {', '.join(models)}")
    if config.start == child:
        raise ConfigError(f"start and end are both {child!r}")
    prompts, verifiers = family.chat_problems(inputs, config.sample.limit)
    return extrapolation_sweep(models[config.start], models[child], models, family.tokenizer,
                               prompts, verifiers, config, family.inputs.classifier(),
                               f"{config.start}→{child}")  # fmt: skip
