"""Regenerate the organism from scratch: ``python -m postlens.organism.train --out DIR``.

Pre-trains the base on the persona corpus, post-trains an SFT child and an RL (GRPO) child from
it, evaluates all three on held-out problems and writes ``DIR/{base,sft,rl}`` (Hugging Face
folders, safetensors) and ``DIR/eval.json``. Deterministic given the seed; ``--smoke`` runs the
same code path in seconds (used by the test suite so the recipe cannot rot).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from postlens.organism.corpus import CorpusConfig
from postlens.organism.evaluate import evaluate_model
from postlens.organism.posttrain import RLStageConfig, SFTStageConfig, run_grpo, run_sft
from postlens.organism.pretrain import ModelConfig, PretrainConfig, pretrain
from postlens.organism.task import make_problems
from postlens.organism.tokenizer import build_organism_tokenizer

if TYPE_CHECKING:
    from postlens.models.types import Model, Tokenizer

logger = logging.getLogger(__name__)
HELD_OUT_SEED = 10_000


@dataclass(frozen=True)
class RecipeConfig:
    """Every hyper-parameter of the organism."""

    pretrain: PretrainConfig = field(
        default_factory=lambda: PretrainConfig(corpus=CorpusConfig(n_docs=230_000))
    )
    sft: SFTStageConfig = field(default_factory=SFTStageConfig)
    rl: RLStageConfig = field(default_factory=RLStageConfig)
    n_held_out: int = 500
    eval_samples: int = 64
    threads: int = 2

    @classmethod
    def smoke(cls) -> RecipeConfig:
        """A tiny configuration that exercises every stage in seconds."""
        return cls(
            pretrain=PretrainConfig(
                corpus=CorpusConfig(n_docs=600),
                model=ModelConfig(d_model=32, n_layers=2, n_heads=2, d_mlp=64),
                batch_size=16,
                max_steps=8,
                warmup_steps=2,
            ),
            sft=SFTStageConfig(n_examples=32, batch_size=16),
            rl=RLStageConfig(steps=2, prompts_per_step=2, generations=2, max_completion_length=24),
            n_held_out=4,
            eval_samples=4,
        )


def _seed_everything(seed: int, threads: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _save(model: Model, tokenizer: Tokenizer, path: Path) -> None:
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
    )
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)


def _cpu_time(log: dict[str, Any], cpu_start: float) -> dict[str, Any]:
    """Add the process CPU seconds of a stage (robust to other jobs on a shared machine)."""
    return {**log, "cpu_seconds": time.process_time() - cpu_start, "load_avg": os.getloadavg()}


def run_recipe(out: Path, seed: int = 0, config: RecipeConfig | None = None) -> dict[str, Any]:
    """Train and evaluate base, sft and rl; returns the evaluation record written to eval.json."""
    config = config or RecipeConfig()
    _seed_everything(seed, config.threads)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_organism_tokenizer()
    held_out = make_problems(config.n_held_out, HELD_OUT_SEED)
    train_problems = make_problems(
        config.sft.n_examples + config.rl.steps * config.rl.prompts_per_step,
        seed + 77,
        exclude=set(held_out),
    )
    timings: dict[str, Any] = {}
    cpu = time.process_time()
    base, timings["pretrain"] = pretrain(config.pretrain, tokenizer, seed, set(held_out))
    timings["pretrain"] = _cpu_time(timings["pretrain"], cpu)
    _save(base, tokenizer, out / "base")
    sft_problems = train_problems[: config.sft.n_examples]
    rl_problems = train_problems[config.sft.n_examples :]
    _seed_everything(seed, config.threads)
    cpu = time.process_time()
    sft, timings["sft"] = run_sft(base, tokenizer, sft_problems, config.sft, out / "_sft_run", seed)
    timings["sft"] = _cpu_time(timings["sft"], cpu)
    _save(sft, tokenizer, out / "sft")
    _seed_everything(seed, config.threads)
    cpu = time.process_time()
    rl, timings["rl"] = run_grpo(
        out / "base", tokenizer, rl_problems, config.rl, out / "_rl_run", seed
    )
    timings["rl"] = _cpu_time(timings["rl"], cpu)
    _save(rl, tokenizer, out / "rl")
    start, cpu = time.perf_counter(), time.process_time()
    evals = {
        name: evaluate_model(
            model, tokenizer, held_out, config.eval_samples, seed, desc=f"evaluating {name}"
        ).to_json()
        for name, model in (("base", base), ("sft", sft), ("rl", rl))
    }
    timings["evaluation"] = _cpu_time({"seconds": time.perf_counter() - start}, cpu)
    for scratch in ("_sft_run", "_rl_run"):  # trainer output dirs; nothing is checkpointed there
        shutil.rmtree(out / scratch, ignore_errors=True)
    record = {"seed": seed, "config": asdict(config), "timings": timings, "eval": evals}
    (out / "eval.json").write_text(json.dumps(record, indent=2, default=str))
    return record


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for base/, sft/, rl/ and eval.json"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny configuration, seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    record = run_recipe(args.out, args.seed, RecipeConfig.smoke() if args.smoke else None)
    logger.info("evaluation: %s", json.dumps(record["eval"]))


if __name__ == "__main__":
    main()
