"""Benchmark: overhead of `ProbeCallback` on a training run, at the default cadence and denser.

Trains the organism's base model (Llama, d_model 128, 4 layers; a tiny model of the same shape
when the checkpoints are absent) with `transformers.Trainer` on addition solutions for a fixed
number of steps, once without the callback and once per cadence with a `ConfidenceMonitor`
(probes at every layer, 32 held-out traces), and reports:

* ``monitor_s``: time spent inside the probe readings (measured by the monitor itself);
* ``overhead_direct``: monitor_s / (train time − monitor_s), robust to a busy machine;
* ``overhead_wall``: (train time − baseline train time) / baseline, the end-to-end figure, noisy
  on a CPU shared with other jobs.

Usage: ``python benchmarks/bench_callbacks.py [--steps 200] [--every 50 10] [--batch 16]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("WANDB_MODE", "disabled")


def load_model_and_tokenizer():  # noqa: ANN201
    from transformers import AutoModelForCausalLM

    from postlens.organism.tokenizer import build_organism_tokenizer

    tok = build_organism_tokenizer()
    folder = Path(__file__).resolve().parents[1] / "postlens/organism/checkpoints/base"
    if (folder / "config.json").is_file():
        return AutoModelForCausalLM.from_pretrained(folder), tok
    from transformers import LlamaConfig

    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=128, intermediate_size=384, num_hidden_layers=4,
        num_attention_heads=4, max_position_embeddings=128, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config), tok


def data(tok, n: int, seed: int):  # noqa: ANN001, ANN201
    from datasets import Dataset

    from postlens.organism.task import format_prompt, make_problems, solution

    rng = random.Random(seed)
    problems = make_problems(n, seed=seed)
    texts = [
        format_prompt(p) + solution(p, rng.choice(["careful", "sloppy"]), rng=rng) for p in problems
    ]
    return Dataset.from_list([dict(tok(t + tok.eos_token)) for t in texts]), problems


def held_out_traces(n: int):  # noqa: ANN201
    from postlens.organism.task import format_prompt, make_problems, solution
    from postlens.probes.confidence.trajectory import Trace

    out = []
    for p in make_problems(n, seed=999):
        steps = solution(p, "careful").rsplit("\nanswer", 1)[0]
        out.append(Trace(format_prompt(p).rstrip("\n"), "\n" + steps, lambda t: True))
    return out


def train(model, tok, dataset, steps: int, batch: int, callbacks: list, out: str) -> float:  # noqa: ANN001
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=out, max_steps=steps, per_device_train_batch_size=batch, report_to="none",
        use_cpu=True, logging_steps=50, save_strategy="no", disable_tqdm=True, seed=0,
    )  # fmt: skip
    trainer = Trainer(
        model=model, args=args, train_dataset=dataset, callbacks=callbacks, processing_class=tok,
        data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
    )  # fmt: skip
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, nargs="+", default=[50, 10])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("transformers").setLevel(logging.ERROR)

    from postlens.probes.confidence.probe import ConfidenceProbe
    from postlens.probes.provenance import Provenance
    from postlens.probes.training.callbacks import ProbeCallback
    from postlens.probes.training.monitor import ConfidenceMonitor

    model, tok = load_model_and_tokenizer()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    dataset, _ = data(tok, 2000, seed=1)
    d = model.config.hidden_size
    probes = [
        ConfidenceProbe.fit(torch.randn(64, d), torch.rand(64), Provenance.of(model, layer))
        for layer in range(model.config.num_hidden_layers)
    ]
    traces = held_out_traces(32)
    with tempfile.TemporaryDirectory() as tmp:
        baseline = train(model, tok, dataset, args.steps, args.batch, [], tmp)
        print(json.dumps({"every": None, "train_s": round(baseline, 2)}), flush=True)
        for every in args.every:
            model.load_state_dict(initial)
            callback = ProbeCallback([ConfidenceMonitor(probes, traces)], every=every)
            total = train(model, tok, dataset, args.steps, args.batch, [callback], tmp)
            reads = len(callback.monitor.history)
            spent = callback.monitor.seconds
            row = {
                "every": every,
                "steps": args.steps,
                "reads": reads,
                "train_s": round(total, 2),
                "step_ms": round(1000 * (total - spent) / args.steps, 1),
                "read_ms": round(1000 * spent / max(reads, 1), 1),
                "monitor_s": round(spent, 3),
                "overhead_direct": round(spent / (total - spent), 4),
                "overhead_wall": round((total - baseline) / baseline, 4),
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
