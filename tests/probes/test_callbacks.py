"""Probe callbacks on real (few-step) training runs: HF Trainer, TRL SFTTrainer and GRPOTrainer."""

from __future__ import annotations

import json
import os

import pytest
import torch

from postlens.probes.callbacks import ProbeCallback, ProbeMonitor, ProbeReward
from postlens.probes.confidence import ConfidenceProbe
from postlens.probes.monitor import ConfidenceMonitor, Monitor
from postlens.probes.provenance import Provenance
from postlens.probes.trajectory import Trace
from postlens.testing import save_model, tiny_model

os.environ.setdefault("WANDB_MODE", "disabled")
TRACES = [
    Trace("q: 1+2=?", "1+2 is 3", lambda s: True),
    Trace("q: 4+4=?", "4+4 is 8", lambda s: True),
]


class Broken:
    name = "broken"

    def read(self, model, tokenizer):
        raise RuntimeError("probe exploded")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    model, tok = tiny_model("llama")
    path = save_model(model, tok, tmp_path_factory.mktemp("cb") / "m")
    probe = ConfidenceProbe.fit(torch.randn(64, 32), torch.rand(64), Provenance.of(model, 1))
    return path, tok, probe


def _dataset(tok, n=16):
    from datasets import Dataset

    texts = [f"q: {i}+{i}={2 * i}" for i in range(n)]
    return Dataset.from_list([{"text": t} for t in texts]), texts


def test_monitor_protocol_and_plain_loop(setup, tmp_path):
    path, tok, probe = setup
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    monitor = ConfidenceMonitor(probe, TRACES)
    assert isinstance(monitor, Monitor)
    loop = ProbeMonitor([monitor, Broken()], tok, every=2, jsonl=tmp_path / "r.jsonl")
    for step in range(5):
        loop.step(model, step)
    assert [h["step"] for h in loop.history] == [0, 2, 4]
    assert set(loop.history[0]) == {
        "step",
        *(f"confidence/cut_{k / 5:.1f}" for k in range(6)),
        "confidence/overconfidence",
    }
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 3
    with pytest.raises(RuntimeError, match="exploded"):
        ProbeMonitor([Broken()], tok, strict=True).step(model, 0)


def test_hf_trainer_logs_readings_and_survives_a_broken_probe(setup, tmp_path):
    from transformers import (
        AutoModelForCausalLM,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainingArguments,
    )

    path, tok, probe = setup
    data, _ = _dataset(tok)
    data = data.map(lambda r: tok(r["text"]), remove_columns=["text"])
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=4,
        per_device_train_batch_size=4,
        report_to="none",
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
    )
    callback = ProbeCallback([ConfidenceMonitor(probe, TRACES), Broken()], every=2)
    trainer = Trainer(
        model=AutoModelForCausalLM.from_pretrained(path), args=args, train_dataset=data,
        data_collator=DataCollatorForLanguageModeling(tok, mlm=False), callbacks=[callback], processing_class=tok,
    )  # fmt: skip
    callback.bind(trainer)
    trainer.train()
    logged = [h for h in trainer.state.log_history if "probe/confidence/overconfidence" in h]
    assert [h["step"] for h in logged] == [2, 4]
    lines = [json.loads(x) for x in (tmp_path / "probe_readings.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 4]


def test_trl_sft_and_grpo_with_the_callback(setup, tmp_path):
    from trl import GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer

    path, tok, probe = setup
    data, texts = _dataset(tok)
    common = {
        "report_to": "none",
        "use_cpu": True,
        "save_strategy": "no",
        "logging_steps": 1,
        "max_steps": 2,
    }
    sft_cb = ProbeCallback([ConfidenceMonitor(probe, TRACES)], every=1)
    sft = SFTTrainer(
        model=str(path),
        args=SFTConfig(output_dir=str(tmp_path / "sft"), per_device_train_batch_size=4, **common),
        train_dataset=data,
        processing_class=tok,
        callbacks=[sft_cb],
    )
    sft_cb.bind(sft).trainer.train()
    assert sum("probe/confidence/overconfidence" in h for h in sft.state.log_history) == 2

    prompts = Dataset_from([{"prompt": t.split("=")[0] + "="} for t in texts])
    reward = ProbeReward(probe, sft.model, tok, lam=0.5)
    length = lambda prompts, completions, **kw: [float(len(c)) / 10 for c in completions]  # noqa: E731
    grpo_cb = ProbeCallback([ConfidenceMonitor(probe, TRACES)], every=1)
    grpo = GRPOTrainer(
        model=str(path), reward_funcs=[length, reward], train_dataset=prompts, processing_class=tok, callbacks=[grpo_cb],
        args=GRPOConfig(output_dir=str(tmp_path / "grpo"), per_device_train_batch_size=4, num_generations=2, max_completion_length=6, beta=0.0, **common),
    )  # fmt: skip
    grpo_cb.bind(grpo).trainer.train()
    assert sum("probe/confidence/overconfidence" in h for h in grpo.state.log_history) == 2
    values = reward(["q: 1+2="], ["1+2 is 3\nanswer 3"])
    assert len(values) == 1 and -0.5 <= values[0] <= 0.5


def Dataset_from(rows):  # noqa: N802
    from datasets import Dataset

    return Dataset.from_list(rows)
