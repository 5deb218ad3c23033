"""GRPO for the real-LM organism: TRL's trainer on chat prompts, resumable from its checkpoints.

Example:
    >>> from postlens.lm_organism.task import Problem
    >>> _rows([Problem(2, 3)])[0]["prompt"]
    [{'role': 'user', 'content': 'What is 2 + 3?'}]
"""

from __future__ import annotations

import os
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
    from transformers import AutoTokenizer
    from trl import GRPOConfig

    from postlens.organism.posttrain import train_grpo

    os.environ.setdefault("WANDB_MODE", "disabled")
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
    tokenizer = AutoTokenizer.from_pretrained(base)
    resume = last_checkpoint(checkpoints)
    model, stats = train_grpo(base, tokenizer, _rows(problems), reward, args, peft_config, resume)
    # A resumed run times its own steps only (its reward log is the whole run's): say where it began.
    stats["resumed_from_step"] = int(resume.rpartition("-")[2]) if resume else 0
    return model, stats
