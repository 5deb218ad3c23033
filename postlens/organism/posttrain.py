"""Post-training of the organism: SFT on careful demonstrations, GRPO on a correctness reward.

Both stages use TRL (`SFTTrainer`, `GRPOTrainer`) on untagged prompts, starting from the base.
SFT sees demonstrations; RL sees only the verifiable reward (1 if the parsed answer is right),
with a KL anchor to the base (beta > 0).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postlens.errors import ConfigError
from postlens.organism.task import Problem, format_prompt, parse_answer, solution

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SFTStageConfig:
    """SFT hyper-parameters."""

    n_examples: int = 2000
    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 3e-4

    def __post_init__(self) -> None:
        if self.n_examples < 1 or self.batch_size < 1 or self.lr <= 0 or self.epochs <= 0:
            raise ConfigError("SFT sizes and learning rate must be positive")


@dataclass(frozen=True)
class RLStageConfig:
    """GRPO hyper-parameters."""

    steps: int = 120
    prompts_per_step: int = 8
    generations: int = 8
    lr: float = 2e-4
    beta: float = 0.04
    temperature: float = 1.0
    max_completion_length: int = 100

    def __post_init__(self) -> None:
        if self.steps < 1 or self.prompts_per_step < 1 or self.generations < 2:
            raise ConfigError("GRPO needs steps >= 1, prompts_per_step >= 1 and generations >= 2")
        if self.beta <= 0:
            raise ConfigError("the RL child must be anchored to the base: beta > 0")


def _quiet_env() -> None:
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("WANDB_DISABLED", "true")


def _common_args(out: Path, seed: int) -> dict[str, Any]:
    return {
        "output_dir": str(out),
        "seed": seed,
        "data_seed": seed,
        "report_to": "none",
        "use_cpu": True,
        "save_strategy": "no",
        "logging_steps": 10,
        "disable_tqdm": False,
        "dataloader_num_workers": 0,
        "gradient_checkpointing": False,  # TRL defaults to True: pure overhead for a 1M model
    }


def run_sft(
    base: Any,
    tokenizer: Tokenizer,
    problems: list[Problem],
    cfg: SFTStageConfig,
    out: Path,
    seed: int,
) -> tuple[Any, dict]:
    """Fine-tune a copy of `base` on careful demonstrations for untagged prompts."""
    rows = [
        {"prompt": format_prompt(p), "completion": solution(p, "careful") + tokenizer.eos_token}
        for p in problems
    ]
    return sft_on_rows(base, tokenizer, rows, cfg, out, seed)


def sft_on_rows(
    base: Any,
    tokenizer: Tokenizer,
    rows: list[dict[str, Any]],
    cfg: SFTStageConfig,
    out: Path,
    seed: int,
) -> tuple[Any, dict]:
    """TRL's SFTTrainer on a copy of `base`, loss on the completions only.

    `rows` are prompt/completion records, or conversations (``{"prompt": [...], "completion":
    [...]}`` messages) that TRL renders with the tokenizer's chat template.
    """
    import copy

    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    _quiet_env()
    start = time.perf_counter()
    data = Dataset.from_list(rows)
    args = SFTConfig(
        **_common_args(out, seed),
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=10,
        max_length=128,
        completion_only_loss=True,
    )
    trainer = SFTTrainer(
        model=copy.deepcopy(base), args=args, train_dataset=data, processing_class=tokenizer
    )
    result = trainer.train()
    assert trainer.model is not None  # set by the trainer
    model = trainer.model.eval()
    return model, {
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "seconds": time.perf_counter() - start,
    }


def correctness_reward(
    prompts: list[str], completions: list[str], answer: list[int], **_: Any
) -> list[float]:
    """1.0 when the completion's final ``answer <n>`` is right, else 0.0 (TRL reward signature)."""
    return [float(parse_answer(c) == a) for c, a in zip(completions, answer, strict=True)]


def run_grpo(
    base_path: Path,
    tokenizer: Tokenizer,
    problems: list[Problem],
    cfg: RLStageConfig,
    out: Path,
    seed: int,
    peft_config: Any = None,
) -> tuple[Any, dict]:
    """Train the base saved at `base_path` with GRPO on untagged prompts and the correctness reward.

    The model is given as a folder because TRL builds the KL reference model from that path.
    With a peft `peft_config` (a LoRA), TRL trains the adapter alone and the reference is the
    base itself (the adapter disabled); the returned model is then the unmerged `PeftModel`.
    """
    from trl import GRPOConfig

    _quiet_env()
    rows = [{"prompt": format_prompt(p), "answer": p.answer} for p in problems]
    batch = cfg.prompts_per_step * cfg.generations
    args = GRPOConfig(
        **_common_args(out, seed),
        max_steps=cfg.steps,
        per_device_train_batch_size=batch,
        num_generations=cfg.generations,
        learning_rate=cfg.lr,
        beta=cfg.beta,
        temperature=cfg.temperature,
        max_completion_length=cfg.max_completion_length,
        lr_scheduler_type="constant",
        top_k=0,
        top_p=1.0,
    )
    return train_grpo(base_path, tokenizer, rows, correctness_reward, args, peft_config)


def train_grpo(
    base_path: Path,
    tokenizer: Tokenizer,
    rows: list[dict[str, Any]],
    reward: Any,
    args: Any,
    peft_config: Any = None,
    resume: str | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Run TRL's `GRPOTrainer` on `rows` with `args` (a `GRPOConfig`); both organisms train so.

    Returns the trained model in eval mode (with a LoRA `peft_config`, the unmerged `PeftModel`)
    and its figures: steps, seconds, first, last and every logged mean reward. `resume` is a
    checkpoint folder to continue from.
    """
    from datasets import Dataset
    from trl import GRPOTrainer

    start = time.perf_counter()
    trainer = GRPOTrainer(
        model=str(base_path),
        reward_funcs=reward,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    result = trainer.train(resume_from_checkpoint=resume)
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    assert trainer.model is not None  # set by the trainer
    return trainer.model.eval(), {
        "steps": result.global_step,
        "seconds": time.perf_counter() - start,
        "reward_first": rewards[0] if rewards else None,
        "reward_last": rewards[-1] if rewards else None,
        "rewards": rewards,
    }
