"""Probes in training loops: a `transformers` callback, a plain-PyTorch monitor, reward shaping.

`ProbeCallback` runs monitors every N steps on their fixed held-out data and logs the readings
through the trainer's own ``log`` (so they reach the console, TensorBoard or W&B like any
metric, and ``state.log_history``), optionally also to a JSONL file next to the checkpoints. It
works unchanged with TRL's trainers (they are `transformers.Trainer` subclasses). A failing
monitor is logged and skipped, never the end of a training run, unless ``strict=True``.

Example:
    >>> callback = ProbeCallback([ConfidenceMonitor(probe, traces)], every=50)  # doctest: +SKIP
    >>> trainer = GRPOTrainer(..., callbacks=[callback])  # doctest: +SKIP
    >>> callback.bind(trainer)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback

from postlens.probes.monitor import Monitor
from postlens.probes.trajectory import Trace

logger = logging.getLogger(__name__)


class ProbeMonitor:
    """Run monitors on a model every `every` steps, for custom training loops.

    Example:
        >>> monitor = ProbeMonitor([ConfidenceMonitor(probe, traces)], tokenizer, every=10)  # doctest: +SKIP
        >>> for step in range(steps):  # doctest: +SKIP
        ...     train_step(); monitor.step(model, step)
    """

    def __init__(
        self,
        monitors: Sequence[Monitor],
        tokenizer: Any,
        every: int = 50,
        jsonl: str | Path | None = None,
        strict: bool = False,
    ) -> None:
        if every < 1:
            raise ValueError("every must be >= 1")
        self.monitors, self.tokenizer, self.every, self.strict = (
            list(monitors),
            tokenizer,
            every,
            strict,
        )
        self.jsonl = Path(jsonl) if jsonl else None
        self.history: list[dict[str, float]] = []
        self.seconds = 0.0

    def read(self, model: Any, step: int) -> dict[str, float]:
        """Every monitor's readings now; a failing monitor is logged and skipped (unless strict)."""
        start = time.perf_counter()
        readings: dict[str, float] = {}
        for monitor in self.monitors:
            try:
                readings.update(monitor.read(model, self.tokenizer))
            except Exception:
                if self.strict:
                    raise
                logger.exception(
                    "probe monitor %r failed at step %d; skipped",
                    getattr(monitor, "name", monitor),
                    step,
                )
        self.seconds += time.perf_counter() - start
        if readings:
            self.history.append({"step": step, **readings})
            if self.jsonl is not None:
                self.jsonl.parent.mkdir(parents=True, exist_ok=True)
                with self.jsonl.open("a") as f:
                    f.write(json.dumps({"step": step, **readings}) + "\n")
        return readings

    def step(self, model: Any, step: int) -> dict[str, float] | None:
        """Call once per training step; reads on every `every`-th step."""
        return self.read(model, step) if step % self.every == 0 else None


class ProbeCallback(TrainerCallback):
    """A `transformers.TrainerCallback` that logs probe readings every `every` steps.

    Args:
        monitors: the probes to run.
        every: cadence in optimizer steps.
        jsonl: file name (inside ``args.output_dir``) to append readings to, or ``None``.
        strict: re-raise a failing monitor instead of skipping it.
        tokenizer: the tokenizer; by default the trainer's ``processing_class``.
    """

    def __init__(
        self,
        monitors: Sequence[Monitor],
        every: int = 50,
        jsonl: str | None = "probe_readings.jsonl",
        strict: bool = False,
        tokenizer: Any = None,
    ) -> None:
        self.monitor = ProbeMonitor(monitors, tokenizer, every, None, strict)
        self.jsonl_name = jsonl
        self.trainer: Any = None

    def bind(self, trainer: Any) -> ProbeCallback:
        """Log through `trainer.log` (reaching every reporting integration). Without it, readings
        are merged into the trainer's next regular log record instead."""
        self.trainer = trainer
        return self

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.monitor.tokenizer = self.monitor.tokenizer or kwargs.get("processing_class")
        if self.jsonl_name and args.output_dir:
            self.monitor.jsonl = Path(args.output_dir) / self.jsonl_name
        self._pending: dict[str, float] = {}

    def on_step_end(
        self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any
    ) -> None:
        if state.global_step % self.monitor.every or model is None:
            return
        readings = self.monitor.read(model, state.global_step)
        if not readings:
            return
        if self.trainer is not None:
            self.trainer.log({f"probe/{k}": v for k, v in readings.items()})
        else:
            self._pending.update({f"probe/{k}": v for k, v in readings.items()})
            control.should_log = True

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs is not None and getattr(self, "_pending", None):
            logs.update(self._pending)
            self._pending = {}


class ProbeReward:
    """A GRPO reward (TRL's reward-function signature) penalising predicted overconfidence.

    reward = −λ · Σ_k pred_k · w_k, the probe's overconfidence of the completion read as a trace
    (prompt + completion up to its final answer line). This is ours: the paper penalises the
    behavioural score; the probe makes the penalty cost one forward pass. Add it to the task
    reward in ``reward_funcs``. ``model`` is read at call time, so pass the policy being trained
    (``trainer.model``) or a fixed reference model.
    """

    __name__ = "probe_overconfidence_penalty"

    def __init__(
        self,
        probe: Any,
        model: Any,
        tokenizer: Any,
        lam: float = 0.5,
        n_cuts: int = 5,
        answer_marker: str = "\nanswer",
    ) -> None:
        if lam < 0:
            raise ValueError("lam must be >= 0")
        self.probe, self.model, self.tokenizer, self.lam = probe, model, tokenizer, lam
        self.n_cuts, self.answer_marker = n_cuts, answer_marker

    def __call__(self, prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        traces = [
            Trace(p, c.split(self.answer_marker)[0], _never)
            for p, c in zip(prompts, completions, strict=True)
        ]
        pred = self.probe.cut_predictions(self.model, self.tokenizer, traces, self.n_cuts)
        return [float(-self.lam * v) for v in pred @ np.linspace(0.5, -0.5, self.n_cuts + 1)]


def _never(_: str) -> bool:
    return False
