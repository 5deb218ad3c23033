"""GRPO for the real-LM organism: TRL's trainer on chat prompts, resumable from its checkpoints.

Example:
    >>> from postlens.lm_organism.task import Problem
    >>> _rows([Problem(2, 3)])[0]["prompt"]
    [{'role': 'user', 'content': 'What is 2 + 3?'}]
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from postlens.lm_organism.recipe import RLRecipe
from postlens.lm_organism.task import Problem


def _rows(problems: Sequence[Problem]) -> list[dict[str, Any]]:
    """TRL's conversational rows: the user turn, and the operands the reward reads."""
    return [
        {"prompt": [{"role": "user", "content": p.question}], "a": p.a, "b": p.b} for p in problems
    ]


def last_checkpoint(folder: Path) -> str | None:
    """The newest ``checkpoint-<step>`` TRL saved in `folder`, if any."""
    found = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return str(found[-1]) if found else None


def grpo(
    base: Path,
    problems: Sequence[Problem],
    reward: Callable[..., list[float]],
    settings: RLRecipe,
    checkpoints: Path,
    seed: int,
    peft_config: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """Train the model saved at `base` with GRPO; returns the model and its training figures.

    TRL builds the KL reference from the same folder (or, with a LoRA `peft_config`, uses the
    base with the adapter disabled). A checkpoint is saved every ``settings.save_steps`` steps
    into `checkpoints` (only the newest is kept), and a run that finds one there resumes from it.
    """
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    os.environ.setdefault("WANDB_MODE", "disabled")
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(base)
    args = GRPOConfig(
        output_dir=str(checkpoints),
        seed=seed,
        data_seed=seed,
        report_to="none",
        use_cpu=True,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=1,  # each checkpoint holds the optimizer state too (3x the model)
        logging_steps=5,
        dataloader_num_workers=0,
        gradient_checkpointing=False,
        max_steps=settings.steps,
        per_device_train_batch_size=settings.prompts_per_step * settings.generations,
        num_generations=settings.generations,
        learning_rate=settings.lr,
        lr_scheduler_type="constant",
        beta=settings.beta,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        max_completion_length=settings.max_completion_length,
    )
    trainer = GRPOTrainer(
        model=str(base),
        reward_funcs=reward,  # type: ignore[arg-type]  # TRL passes the dataset's columns
        args=args,
        train_dataset=Dataset.from_list(_rows(problems)),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    result = trainer.train(resume_from_checkpoint=last_checkpoint(checkpoints))
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    assert trainer.model is not None  # set by the trainer
    return trainer.model.eval(), {
        "steps": result.global_step,
        "seconds": time.perf_counter() - start,
        "reward_first": rewards[0] if rewards else None,
        "reward_last": rewards[-1] if rewards else None,
        "rewards": rewards,
    }
