"""Every setting of the real-LM organism's build, in one typed recipe.

The build is deterministic from `Recipe.seed`: the problem split, the SFT order, the GRPO
sampling and the evaluation all derive from it.

Example:
    >>> Recipe().rl.generations, Recipe.smoke().rl.steps
    (8, 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from postlens.errors import ConfigError


@dataclass(frozen=True)
class SFTRecipe:
    """Supervised fine-tuning on demonstrations (loss on the assistant turn only).

    Attributes:
        epochs: passes over the training problems.
        batch_size: conversations per step.
        lr: learning rate (constant after a short warm-up).
    """

    epochs: float = 2.0
    batch_size: int = 16
    lr: float = 5e-5

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("SFT epochs, batch_size and lr must be positive")


@dataclass(frozen=True)
class RLRecipe:
    """GRPO with the correctness reward, anchored to the base by a KL penalty.

    Attributes:
        steps: optimizer steps.
        prompts_per_step: problems per step.
        generations: samples per problem (the group GRPO normalises within).
        lr: learning rate.
        beta: weight of the KL penalty to the base (> 0: the child stays anchored).
        max_completion_length: tokens per sample.
        save_steps: a resumable checkpoint every this many steps.
    """

    steps: int = 120
    prompts_per_step: int = 4
    generations: int = 8
    lr: float = 3e-6
    beta: float = 0.04
    max_completion_length: int = 48
    save_steps: int = 20

    def __post_init__(self) -> None:
        if self.steps < 1 or self.prompts_per_step < 1 or self.generations < 2:
            raise ConfigError("GRPO needs steps >= 1, prompts_per_step >= 1 and generations >= 2")
        if self.beta <= 0 or self.lr <= 0 or self.save_steps < 1:
            raise ConfigError("GRPO needs beta > 0, lr > 0 and save_steps >= 1")


@dataclass(frozen=True)
class LoraRecipe:
    """GRPO on a LoRA adapter of every attention and MLP projection.

    Attributes:
        rl: the GRPO settings (a LoRA takes a larger learning rate than full weights).
        r: the adapter's rank.
        alpha: its ``lora_alpha`` (the update is scaled by alpha / r).
    """

    rl: RLRecipe = field(default_factory=lambda: RLRecipe(steps=80, lr=5e-5))
    r: int = 8
    alpha: int = 16

    def __post_init__(self) -> None:
        if self.r < 1 or self.alpha <= 0:
            raise ConfigError("LoRA needs r >= 1 and alpha > 0")


@dataclass(frozen=True)
class EvalRecipe:
    """How every model of the family is evaluated.

    Attributes:
        n_samples: samples per held-out problem at temperature 1 (pass@k for k up to this).
        max_new_tokens: tokens per sample.
    """

    n_samples: int = 16
    max_new_tokens: int = 48

    def __post_init__(self) -> None:
        if self.n_samples < 1 or self.max_new_tokens < 1:
            raise ConfigError("evaluation needs n_samples >= 1 and max_new_tokens >= 1")


@dataclass(frozen=True)
class Recipe:
    """The whole build.

    Attributes:
        seed: every random choice of the build.
        held_out: problems kept out of training, for evaluation and the family's defaults.
        sft: the SFT child.
        rl: the RL child.
        lora: the LoRA child.
        eval: the evaluation.
        threads: torch threads (the build is CPU work).
    """

    seed: int = 0
    held_out: int = 61
    sft: SFTRecipe = field(default_factory=SFTRecipe)
    rl: RLRecipe = field(default_factory=RLRecipe)
    lora: LoraRecipe = field(default_factory=LoraRecipe)
    eval: EvalRecipe = field(default_factory=EvalRecipe)
    threads: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.held_out < 361:
            raise ConfigError("held_out must leave training problems (1 to 360)")
        if self.threads < 1:
            raise ConfigError("threads must be >= 1")

    @classmethod
    def smoke(cls) -> Recipe:
        """The same code path in seconds (one step of each stage, a few samples)."""
        rl = RLRecipe(steps=1, prompts_per_step=2, generations=2, max_completion_length=8)
        return cls(
            held_out=4,
            sft=SFTRecipe(epochs=0.02, batch_size=4),
            rl=rl,
            lora=LoraRecipe(rl=replace(rl, lr=1e-4)),
            eval=EvalRecipe(n_samples=2, max_new_tokens=8),
        )
