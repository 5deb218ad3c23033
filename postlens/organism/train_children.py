"""Rebuild the chat and adapter children from the shipped base: ``python -m
postlens.organism.train_children --out DIR``.

Trains ``chat-sft`` (TRL SFT on ChatML conversations, `postlens.organism.chat`) and ``rl-lora``
(GRPO on a LoRA adapter) from the base, never changing it, evaluates both on the organism's
held-out problems (chat-sft asked through its template) and writes ``DIR/chat-sft`` (a Hugging
Face folder), ``DIR/rl-lora`` (a PEFT adapter folder) and ``DIR/eval_children.json``. The
training problems are those of ``organism:sft`` and ``organism:rl`` (same seed, same split), so
each new child is the counterpart of an old one. ``--smoke`` runs the same code path in seconds.

Example:
    >>> ChildrenConfig.smoke().rl_lora.grpo.steps
    1
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postlens.models.specs import ORGANISM_ROOT
from postlens.organism.chat import (
    CHAT_SFT_EPOCHS,
    LoraStageConfig,
    chat_tokenizer,
    run_chat_sft,
    run_grpo_lora,
    save_adapter,
)
from postlens.organism.evaluate import evaluate_model
from postlens.organism.posttrain import RLStageConfig, SFTStageConfig
from postlens.organism.task import make_problems
from postlens.organism.train import HELD_OUT_SEED, _cpu_time, _save, _seed_everything

if TYPE_CHECKING:
    from postlens.models.types import Generating, Tokenizer

logger = logging.getLogger(__name__)
#: Held-out problems the recipe excludes from training (the organism's 500, always).
N_EXCLUDED = 500


@dataclass(frozen=True)
class ChildrenConfig:
    """Every hyper-parameter of the two children and their evaluation.

    Attributes:
        chat_sft: the chat SFT stage.
        rl_lora: the LoRA GRPO stage.
        n_held_out: held-out problems evaluated (the first of the organism's 500).
        eval_samples: samples per problem.
        threads: torch threads.
    """

    chat_sft: SFTStageConfig = field(default_factory=lambda: SFTStageConfig(epochs=CHAT_SFT_EPOCHS))
    rl_lora: LoraStageConfig = field(default_factory=LoraStageConfig)
    n_held_out: int = 500
    eval_samples: int = 64
    threads: int = 2

    @classmethod
    def smoke(cls) -> ChildrenConfig:
        """A tiny configuration that exercises both stages in seconds."""
        grpo = RLStageConfig(steps=1, prompts_per_step=2, generations=2, max_completion_length=16)
        return cls(
            chat_sft=SFTStageConfig(n_examples=16, batch_size=16, epochs=CHAT_SFT_EPOCHS),
            rl_lora=LoraStageConfig(grpo=grpo, r=2, alpha=4),
            n_held_out=2,
            eval_samples=2,
        )


CHILDREN = ("chat-sft", "rl-lora")


def run_children(
    out: Path,
    base_dir: Path | None = None,
    seed: int = 0,
    config: ChildrenConfig | None = None,
    only: tuple[str, ...] = CHILDREN,
) -> dict[str, Any]:
    """Train and evaluate chat-sft and rl-lora (or those in `only`) from the base at `base_dir`.

    Returns:
        The record written to ``out/eval_children.json`` (``eval_<child>.json`` for one child):
        seed, config, timings and evaluation.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = config or ChildrenConfig()
    base_dir = Path(base_dir or ORGANISM_ROOT / "base")
    _seed_everything(seed, config.threads)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    held_out = make_problems(N_EXCLUDED, HELD_OUT_SEED)
    sft_cfg, grpo = config.chat_sft, config.rl_lora.grpo
    # The organism recipe's split (train.run_recipe): the same seed, sizes and exclusions.
    train_problems = make_problems(
        sft_cfg.n_examples + grpo.steps * grpo.prompts_per_step, seed + 77, exclude=set(held_out)
    )
    problems = held_out[: config.n_held_out]
    timings: dict[str, Any] = {}
    evals: dict[str, Any] = {}
    if "chat-sft" in only:
        base = AutoModelForCausalLM.from_pretrained(base_dir).eval()
        chat_tok = chat_tokenizer(tokenizer)
        cpu = time.process_time()
        chat, timings["chat-sft"] = run_chat_sft(
            base, chat_tok, train_problems[: sft_cfg.n_examples], sft_cfg, out / "_chat_run", seed
        )
        timings["chat-sft"] = _cpu_time(timings["chat-sft"], cpu)
        _save(chat, chat_tok, out / "chat-sft")
        evals["chat-sft"] = _evaluate("chat-sft", chat, chat_tok, problems, config, seed, timings)
    if "rl-lora" in only:
        _seed_everything(seed, config.threads)
        cpu = time.process_time()
        lora, timings["rl-lora"] = run_grpo_lora(
            base_dir,
            tokenizer,
            train_problems[sft_cfg.n_examples :],
            config.rl_lora,
            out / "_lora_run",
            seed,
        )
        timings["rl-lora"] = _cpu_time(timings["rl-lora"], cpu)
        save_adapter(lora, out / "rl-lora")
        merged = lora.merge_and_unload()  # the same model, sampled without peft's overhead
        evals["rl-lora"] = _evaluate("rl-lora", merged, tokenizer, problems, config, seed, timings)
    for scratch in ("_chat_run", "_lora_run"):  # trainer output dirs; nothing is checkpointed
        shutil.rmtree(out / scratch, ignore_errors=True)
    record = {"seed": seed, "config": asdict(config), "timings": timings, "eval": evals}
    name = "eval_children.json" if len(only) > 1 else f"eval_{only[0]}.json"
    (out / name).write_text(json.dumps(record, indent=2, default=str))
    return record


def _evaluate(
    name: str,
    model: Generating,
    tokenizer: Tokenizer,
    problems: list[Any],
    config: ChildrenConfig,
    seed: int,
    timings: dict[str, Any],
) -> dict[str, Any]:
    """The organism's evaluation of one child (chat-sft asked through its chat template)."""
    start, cpu = time.perf_counter(), time.process_time()
    result = evaluate_model(
        model,
        tokenizer,
        problems,
        config.eval_samples,
        seed,
        desc=f"evaluating {name}",
        chat=name == "chat-sft",
    )
    timings[f"evaluation {name}"] = _cpu_time({"seconds": time.perf_counter() - start}, cpu)
    return result.to_json()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the two children")
    parser.add_argument("--base", type=Path, default=None, help="base folder (default: shipped)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny configuration, seconds")
    parser.add_argument("--n-held-out", type=int, default=None, help="problems evaluated")
    parser.add_argument("--eval-samples", type=int, default=None, help="samples per problem")
    parser.add_argument("--only", choices=CHILDREN, default=None, help="build one child only")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    config = ChildrenConfig.smoke() if args.smoke else ChildrenConfig()
    overrides = {
        "n_held_out": args.n_held_out,
        "eval_samples": args.eval_samples,
        "threads": args.threads,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        import dataclasses

        config = dataclasses.replace(config, **overrides)
    only = (args.only,) if args.only else CHILDREN
    record = run_children(args.out, args.base, args.seed, config, only)
    logger.info("evaluation: %s", json.dumps(record["eval"]))


if __name__ == "__main__":
    main()
