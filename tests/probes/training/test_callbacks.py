"""Probe callbacks on real (few-step) training runs: HF Trainer, TRL SFTTrainer and GRPOTrainer."""

from __future__ import annotations

import json
import os

import pytest
import torch

from postlens.errors import PostlensError
from postlens.probes.confidence.probe import ConfidenceProbe
from postlens.probes.confidence.trajectory import Trace
from postlens.probes.provenance import Provenance
from postlens.probes.training.callbacks import ProbeCallback, ProbeMonitor, ProbeReward
from postlens.probes.training.monitor import ConfidenceMonitor, Monitor
from postlens.testing import save_model, tiny_model

os.environ.setdefault("WANDB_MODE", "disabled")
TRACES = [
    Trace("q: 1+2=?", "1+2 is 3", lambda s: True),
    Trace("q: 4+4=?", "4+4 is 8", lambda s: True),
]


class Broken:
    name = "broken"

    def read(self, model, tokenizer, batch=None):
        raise RuntimeError("probe exploded")


class Fixed:
    name = "fixed"

    def read(self, model, tokenizer, batch=None):
        return {"fixed/x": 0.5, "fixed/nan": float("nan")}


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
    # Several layers from one forward pass; the first probe gives the mean trajectory.
    other = ConfidenceProbe.fit(torch.randn(64, 32), torch.rand(64), Provenance.of(model, 0))
    both = ConfidenceMonitor([probe, other], TRACES).read(model, tok)
    assert both["confidence/L1/overconfidence"] == both["confidence/overconfidence"]
    assert "confidence/L0/overconfidence" in both
    single = ConfidenceMonitor(probe, TRACES).read(model, tok, batch=TRACES[:1])
    assert "confidence/L1/overconfidence" not in single


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
    args.logging_steps = 3  # the callback makes the trainer log at its own cadence too
    callback = ProbeCallback([ConfidenceMonitor(probe, TRACES), Broken()], every=2)

    def make() -> Trainer:
        return Trainer(
            model=AutoModelForCausalLM.from_pretrained(path), args=args, train_dataset=data,
            data_collator=DataCollatorForLanguageModeling(tok, mlm=False), callbacks=[callback], processing_class=tok,
        )  # fmt: skip

    trainer = make()
    trainer.train()  # not bound explicitly: the callback finds its trainer
    assert callback.trainer is trainer and callback.monitor.failures == 2
    logged = [h for h in trainer.state.log_history if "probe/confidence/overconfidence" in h]
    assert [h["step"] for h in logged] == [2, 4]
    assert all("loss" in h and "learning_rate" in h for h in logged)  # one record per step
    assert [h["step"] for h in trainer.state.log_history if "loss" in h] == [2, 3, 4]
    lines = [json.loads(x) for x in (tmp_path / "probe_readings.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 4]

    callback = ProbeCallback([Broken()], every=2, strict=True)
    with pytest.raises(RuntimeError, match="exploded"):
        make().train()


def test_without_a_trainer_readings_join_the_next_log_record():
    from transformers import TrainerControl, TrainerState

    callback = ProbeCallback([Fixed()], every=1)
    state, control = TrainerState(), TrainerControl()
    state.global_step = 1
    callback.on_step_end(None, state, control, model=object())
    assert control.should_log
    logs = {"loss": 1.0}
    state.log_history.append({**logs, "step": 1})  # what Trainer.log does before on_log
    callback.on_log(None, state, control, logs=logs)
    assert logs == {"loss": 1.0, "probe/fixed/x": 0.5}
    assert state.log_history[-1] == {"loss": 1.0, "probe/fixed/x": 0.5, "step": 1}


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
    reward = ProbeReward(probe, None, tok, lam=0.5)
    length = lambda prompts, completions, **kw: [float(len(c)) / 10 for c in completions]  # noqa: E731
    grpo_cb = ProbeCallback([ConfidenceMonitor(probe, TRACES)], every=1)
    grpo = GRPOTrainer(
        model=str(path), reward_funcs=[length, reward], train_dataset=prompts, processing_class=tok, callbacks=[grpo_cb],
        args=GRPOConfig(output_dir=str(tmp_path / "grpo"), per_device_train_batch_size=4, num_generations=2, max_completion_length=6, beta=0.0, **common),
    )  # fmt: skip
    reward.bind(grpo)  # reads the policy being trained
    grpo_cb.bind(grpo).trainer.train()
    logged = [h for h in grpo.state.log_history if "probe/confidence/overconfidence" in h]
    assert len(logged) == 2
    # TRL's own metrics stay in the same record (the callback does not drain them).
    assert all("reward" in h and "probe_overconfidence" in h for h in logged)
    values = reward(["q: 1+2="], ["1+2 is 3\nanswer 3"])
    assert len(values) == 1 and -0.5 <= values[0] <= 0.5


def test_probe_reward_on_chat_messages_and_when_it_fails(setup):
    path, tok, probe = setup
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    reward = ProbeReward(probe, model, tok, lam=1.0)
    metrics = {}
    chat = reward(
        [[{"role": "user", "content": "q: 1+2="}]],
        [[{"role": "assistant", "content": "1+2 is 3\nanswer 3"}]],
        log_metric=metrics.__setitem__,
    )
    assert chat == pytest.approx(reward(["q: 1+2="], ["1+2 is 3\nanswer 3"]))
    assert metrics["probe_overconfidence"] == pytest.approx(-chat[0])
    wide, _ = tiny_model("llama", hidden_size=48, num_attention_heads=4, num_key_value_heads=2)
    assert ProbeReward(probe, wide, tok)(["q"], ["a"]) == [0.0]  # logged, no penalty
    with pytest.raises(PostlensError, match="d_model"):
        ProbeReward(probe, wide, tok, strict=True)(["q"], ["a"])


def Dataset_from(rows):  # noqa: N802
    from datasets import Dataset

    return Dataset.from_list(rows)
