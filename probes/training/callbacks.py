"""Probes in training loops: a `transformers` callback, a plain-PyTorch monitor, reward shaping.

`ProbeCallback` runs monitors (`postlens.probes.training.monitor`) every N optimizer steps on their fixed
held-out data, and the readings join the trainer's own log record of that step: they go through
``Trainer.log`` (TRL's overrides included), so they reach the console, TensorBoard, W&B and
``state.log_history`` like any metric, in the same record as the loss. Optionally they are
also appended to a JSONL file next to the checkpoints (``args.output_dir``). It works unchanged
with TRL's trainers (they subclass `transformers.Trainer`). A failing monitor is logged and
skipped, never the end of a training run, unless ``strict=True``.

How the readings reach the log: at ``on_step_end`` the callback reads the probes, keeps the
readings and sets ``control.should_log`` so the trainer logs at that step; the trainer's ``log``
(wrapped once by `ProbeCallback.bind`) adds them to the record before it is stored and handed to
the reporting integrations. Calling ``trainer.log`` directly from the callback would be
simpler but wrong with TRL: its ``log`` drains the metrics it accumulates between logging steps
(rewards, KL, entropy), so a second call per step would steal them into the probe's record.
Without a bound trainer (the callback finds it on the call stack at ``on_train_begin``; `bind`
makes it explicit) the readings are merged in ``on_log`` into ``logs`` and the last
``log_history`` record instead, which reaches only the integrations that run after this callback.

Example (with a trainer: ``GRPOTrainer(..., callbacks=[callback])``, then ``callback.bind(trainer)``;
the readings land in ``trainer.state.log_history`` as ``probe/confidence/...``):
    >>> import postlens as pl
    >>> from postlens.probes.training.monitor import ConfidenceMonitor
    >>> from postlens.probes.confidence.trajectory import Trace
    >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
    >>> import torch
    >>> from postlens.probes.confidence.probe import ConfidenceProbe
    >>> from postlens.probes.provenance import Provenance
    >>> probe = ConfidenceProbe.fit(torch.randn(40, 128), torch.rand(40), Provenance.of(pair.post, 2), ridge=1.0)
    >>> traces = [Trace("Q: 12 + 34 = ?\\n", "2+4+0=6 write 6 carry 0 got 6", lambda t: "46" in t)]
    >>> callback = ProbeCallback([ConfidenceMonitor(probe, traces)], every=50)
    >>> callback.monitor.every
    50
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import numpy as np
from transformers import TrainerCallback

from postlens.errors import ConfigError
from postlens.probes.confidence.trajectory import Trace
from postlens.probes.training.monitor import Monitor

if TYPE_CHECKING:
    from postlens.backends.base import ModelLike
    from postlens.models.types import Tokenizer

logger = logging.getLogger(__name__)


class ProbeMonitor:
    """Run monitors on a model every `every` steps, for custom training loops.

    Args:
        monitors: the probes to run.
        tokenizer: the model's tokenizer (``None`` when the models passed are Backends).
        every: cadence in steps.
        jsonl: a file to append ``{"step": ..., readings}`` lines to, or ``None``.
        strict: re-raise a failing monitor instead of logging and skipping it.

    Example:
        >>> import postlens as pl
        >>> from postlens.probes.training.monitor import ConfidenceMonitor
        >>> from postlens.probes.confidence.trajectory import Trace
        >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
        >>> import torch
        >>> from postlens.probes.confidence.probe import ConfidenceProbe
        >>> from postlens.probes.provenance import Provenance
        >>> probe = ConfidenceProbe.fit(torch.randn(40, 128), torch.rand(40), Provenance.of(pair.post, 2), ridge=1.0)
        >>> traces = [Trace("Q: 12 + 34 = ?\\n", "2+4+0=6 write 6 carry 0 got 6", lambda t: "46" in t)]
        >>> monitor = ProbeMonitor([ConfidenceMonitor(probe, traces)], pair.tokenizer, every=10)
        >>> for step in range(11):  # your training step goes here
        ...     readings = monitor.step(pair.post.hf_model, step)
        >>> [r["step"] for r in monitor.history], "confidence/overconfidence" in readings
        ([0, 10], True)
    """

    def __init__(
        self,
        monitors: Sequence[Monitor],
        tokenizer: Tokenizer | None = None,
        every: int = 50,
        jsonl: str | Path | None = None,
        strict: bool = False,
    ) -> None:
        if every < 1:
            raise ConfigError("every must be >= 1")
        if not monitors:
            raise ConfigError("give at least one monitor")
        self.monitors, self.tokenizer = list(monitors), tokenizer
        self.every, self.strict = every, strict
        self.jsonl = Path(jsonl) if jsonl else None
        self.history: list[dict[str, float]] = []
        self.failures = 0
        self.seconds = 0.0  # total time spent reading, to measure the overhead

    def read(self, model: ModelLike, step: int, write: bool = True) -> dict[str, float]:
        """Every monitor's readings now; a failing monitor is logged and skipped (unless strict)."""
        start = time.perf_counter()
        readings: dict[str, float] = {}
        for monitor in self.monitors:
            name = getattr(monitor, "name", type(monitor).__name__)
            try:
                values = monitor.read(model, self.tokenizer)
            except Exception:
                if self.strict:
                    raise
                self.failures += 1
                logger.exception("probe monitor %r failed at step %d; skipped", name, step)
                continue
            for key, value in values.items():
                if math.isfinite(value):
                    readings[key] = float(value)
                else:
                    logger.warning("probe reading %s is %s at step %d; dropped", key, value, step)
        self.seconds += time.perf_counter() - start
        if readings:
            self.history.append({"step": step, **readings})
            if write and self.jsonl is not None:
                self.jsonl.parent.mkdir(parents=True, exist_ok=True)
                with self.jsonl.open("a") as f:
                    f.write(json.dumps({"step": step, **readings}) + "\n")
        return readings

    def step(self, model: ModelLike, step: int) -> dict[str, float] | None:
        """Call once per training step; reads on every `every`-th step."""
        return self.read(model, step) if step % self.every == 0 else None


class ProbeCallback(TrainerCallback):
    """A `transformers.TrainerCallback` that logs probe readings every `every` steps.

    Args:
        monitors: the probes to run.
        every: cadence in optimizer steps (``state.global_step``).
        jsonl: file name (inside ``args.output_dir``) to append readings to, or ``None``.
        strict: re-raise a failing monitor instead of skipping it.
        tokenizer: the tokenizer; by default the trainer's ``processing_class``.
        prefix: prepended to every reading's name in the trainer's log.

    Example:
        >>> import torch
        >>> from postlens.probes.training.monitor import ConfidenceMonitor
        >>> from postlens.probes.confidence.trajectory import Trace
        >>> from postlens.testing import tiny_model
        >>> from postlens.probes.confidence.probe import ConfidenceProbe
        >>> from postlens.probes.provenance import Provenance
        >>> model, tok = tiny_model("llama")
        >>> probe = ConfidenceProbe.fit(torch.randn(20, 32), torch.rand(20), Provenance.of(model, 1), ridge=1.0)
        >>> cb = ProbeCallback([ConfidenceMonitor(probe, [Trace("q: 1+2", " 3", bool)])], every=50)
        >>> cb.monitor.every  # Trainer(model=model, args=args, train_dataset=data, callbacks=[cb]).train()
        50
    """

    def __init__(
        self,
        monitors: Sequence[Monitor],
        every: int = 50,
        jsonl: str | None = "probe_readings.jsonl",
        strict: bool = False,
        tokenizer: Tokenizer | None = None,
        prefix: str = "probe/",
    ) -> None:
        self.monitor = ProbeMonitor(monitors, tokenizer, every, None, strict)
        self.jsonl_name, self.prefix = jsonl, prefix
        self.trainer: Any = None
        self._pending: dict[str, float] = {}

    def bind(self, trainer: Any) -> ProbeCallback:
        """Merge readings into the records `trainer.log` writes (done once per trainer)."""
        if self.trainer is trainer:
            return self
        self.trainer, original = trainer, trainer.log

        def log(logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
            # Evaluation records keep their own keys; the readings wait for the next train record.
            if self._pending and not any(k.startswith("eval_") for k in logs):
                logs.update(self._pending)
                self._pending = {}
            return original(logs, *args, **kwargs)

        trainer.log = log
        return self

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.monitor.tokenizer is None:
            self.monitor.tokenizer = kwargs.get("processing_class")
        if self.jsonl_name and args.output_dir and state.is_world_process_zero:
            self.monitor.jsonl = Path(args.output_dir) / self.jsonl_name
        if self.trainer is None:
            trainer = _calling_trainer()
            if trainer is not None:
                self.bind(trainer)
        self._pending = {}

    def on_step_end(
        self, args: Any, state: Any, control: Any, model: ModelLike | None = None, **kwargs: Any
    ) -> None:
        if state.global_step % self.monitor.every or model is None:
            return
        # Every rank reads (a sharded model needs all of them in the forward pass); the trainer
        # reports only from the main process, and only it writes the JSONL file.
        readings = self.monitor.read(model, state.global_step)
        if readings:
            self._pending.update({f"{self.prefix}{k}": v for k, v in readings.items()})
            control.should_log = True

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        # Only reached with readings pending when no trainer is bound (see the module docstring).
        if logs is None or not self._pending or any(k.startswith("eval_") for k in logs):
            return
        logs.update(self._pending)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(self._pending)
        self._pending = {}

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._pending:  # a last reading the trainer never logged
            state.log_history.append({**self._pending, "step": state.global_step})
            self._pending = {}


def _calling_trainer() -> Any:
    """The `transformers.Trainer` whose method is on the call stack, if any."""
    from transformers import Trainer

    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Trainer):
            return candidate
        frame = frame.f_back
    return None


class ProbeReward:
    """A GRPO reward (TRL's reward-function signature) penalising predicted overconfidence.

    reward = −λ · Σ_k pred_k · w_k: the probe's overconfidence of the completion read as a
    trace (prompt + completion up to its final answer line). This shaping is ours, not the
    paper's: the paper penalises the behavioural overconfidence, which costs (K+1)·n samples per
    completion; the probe makes it one forward pass. Add it next to the task reward in
    ``reward_funcs`` (TRL sums them, with ``reward_weights`` if given). A completion without
    reasoning has a flat trajectory and no penalty (the weights sum to zero).

    Args:
        probe: a fitted `ConfidenceProbe`.
        model: the model to read, fixed (e.g. a frozen reference); ``None`` reads the policy
            being trained (``trainer.model``, after `bind`).
        tokenizer: its tokenizer.
        lam: λ, the penalty weight.
        n_cuts: K.
        answer_marker: where the reasoning ends in a completion.
        strict: re-raise a failing probe instead of returning no penalty.

    Example:
        >>> import torch
        >>> import postlens as pl
        >>> from postlens.probes.confidence.probe import ConfidenceProbe
        >>> from postlens.probes.provenance import Provenance
        >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
        >>> probe = ConfidenceProbe.fit(torch.randn(40, 128), torch.rand(40), Provenance.of(pair.post, 2), ridge=1.0)
        >>> reward = ProbeReward(probe, pair.post.hf_model, pair.tokenizer, lam=0.5)
        >>> len(reward(["Q: 1 + 2 = ?\\n"], ["1+2+0=3 write 3 carry 0 got 3\\nanswer 3"]))
        1

        In TRL: ``GRPOTrainer(..., reward_funcs=[correct, reward])``, then ``reward.bind(trainer)``
        (``model=None`` then reads the policy being trained).
    """

    __name__ = "probe_overconfidence_penalty"

    def __init__(
        self,
        probe: Any,
        model: ModelLike | None = None,
        tokenizer: Tokenizer | None = None,
        lam: float = 0.5,
        n_cuts: int = 5,
        answer_marker: str = "\nanswer",
        strict: bool = False,
    ) -> None:
        if lam < 0 or n_cuts < 1:
            raise ConfigError("lam must be >= 0 and n_cuts positive")
        self.probe, self.model, self.tokenizer, self.lam = probe, model, tokenizer, lam
        self.n_cuts, self.answer_marker, self.strict = n_cuts, answer_marker, strict
        self.trainer: Any = None

    def bind(self, trainer: Any) -> ProbeReward:
        """Read the policy of `trainer` (and use its tokenizer unless one was given)."""
        self.trainer = trainer
        self.tokenizer = self.tokenizer or getattr(trainer, "processing_class", None)
        return self

    def __call__(
        self, prompts: list[Any], completions: list[Any], **kwargs: Any
    ) -> list[float | None]:
        model = self.model if self.model is not None else getattr(self.trainer, "model", None)
        try:
            if model is None:
                raise ConfigError("ProbeReward has no model: pass one or bind(trainer)")
            traces = [
                Trace(_text(p), _text(c).split(self.answer_marker)[0], _never)
                for p, c in zip(prompts, completions, strict=True)
            ]
            pred = self.probe.cut_predictions(model, self.tokenizer, traces, self.n_cuts)
        except Exception:
            if self.strict:
                raise
            logger.exception("probe reward failed; no penalty for this batch")
            return [0.0] * len(completions)
        overconfidence = pred @ np.linspace(0.5, -0.5, self.n_cuts + 1)
        if callable(kwargs.get("log_metric")):  # TRL >= 1.x: averaged into the trainer's log
            kwargs["log_metric"]("probe_overconfidence", float(overconfidence.mean()))
        return [float(-self.lam * v) for v in overconfidence]


def _text(value: Any) -> str:
    """A prompt or completion as text: TRL passes strings, or chat messages (dicts)."""
    if isinstance(value, str):
        return value
    return "".join(m.get("content", "") for m in value if isinstance(m, dict))


def _never(_: str) -> bool:
    return False
