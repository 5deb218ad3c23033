"""Behavioural confidence trajectories (BRIEF.md §4, the paper's definition).

A trace (prompt + reasoning) is cut after a fraction k/K of its reasoning tokens (k = 0..K), an
answer-forcing suffix is appended, n short continuations are sampled, and the score at k is their
pass rate under a verifier. Overconfidence = Σ_k score_k · w_k with w = linspace(0.5, −0.5, K+1):
high when the answer is already right early and the rest of the reasoning adds little.

Example:
    >>> traj = behavioural_trajectories(pair.post, pair.tokenizer, traces)  # doctest: +SKIP
    >>> traj.overconfidence.mean()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from postlens.backends.base import Backend
from postlens.generation import sample_completions


@dataclass(frozen=True)
class TrajectoryConfig:
    """Settings (the paper's defaults: K = 5 cuts, n = 10 continuations of at most 32 tokens).

    Attributes:
        n_cuts: K; the trace is cut at 0/K, 1/K, ..., K/K of its reasoning tokens.
        n_samples: continuations sampled at each cut.
        max_new_tokens: length of each continuation.
        suffix: appended after the cut to force an answer now.
        temperature: sampling temperature of the continuations.
        seed: seed of the sampling.
        batch_size: sequences per generation batch.
    """

    n_cuts: int = 5
    n_samples: int = 10
    max_new_tokens: int = 32
    suffix: str = "\nanswer "
    temperature: float = 1.0
    seed: int = 0
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.n_cuts < 1 or self.n_samples < 1 or self.max_new_tokens < 1:
            raise ValueError("n_cuts, n_samples and max_new_tokens must be positive")

    @property
    def weights(self) -> np.ndarray:
        """w = linspace(0.5, −0.5, K+1)."""
        return np.linspace(0.5, -0.5, self.n_cuts + 1)


@dataclass
class Trace:
    """A reasoning trace to probe.

    Attributes:
        prompt: the question.
        reasoning: the reasoning, without its final answer.
        verifier: True when ``suffix + continuation`` states the right answer.
        label: free text (e.g. the persona style of the trace).
    """

    prompt: str
    reasoning: str
    verifier: Callable[[str], bool]
    label: str = ""


def cut_points(tokenizer: Any, trace: Trace, n_cuts: int) -> list[tuple[str, int]]:
    """The K+1 prefixes (text, token count of prompt + reasoning kept) of a trace."""
    prompt_ids = tokenizer(trace.prompt).input_ids
    reasoning_ids = tokenizer(trace.reasoning, add_special_tokens=False).input_ids
    out = []
    for k in range(n_cuts + 1):
        keep = round(k * len(reasoning_ids) / n_cuts)
        text = trace.prompt + tokenizer.decode(reasoning_ids[:keep])
        out.append((text, len(prompt_ids) + keep))
    return out


@dataclass
class TrajectoryResult:
    """Scores per trace and cut.

    Attributes:
        scores: pass rate at each cut, shape ``[n_traces, K+1]``.
        overconfidence: Σ score_k · w_k per trace.
        labels: each trace's label.
    """

    scores: np.ndarray
    overconfidence: np.ndarray
    labels: list[str]
    config: TrajectoryConfig = field(default_factory=TrajectoryConfig)

    @property
    def mean_trajectory(self) -> np.ndarray:
        return self.scores.mean(0)

    def by_label(self) -> dict[str, dict[str, Any]]:
        """Mean trajectory and overconfidence per label (e.g. persona style)."""
        labels = np.array(self.labels)
        return {
            lab: {
                "n": int((labels == lab).sum()),
                "mean_trajectory": self.scores[labels == lab].mean(0).tolist(),
                "overconfidence": float(self.overconfidence[labels == lab].mean()),
            }
            for lab in sorted(set(self.labels))
        }

    def to_frame(self) -> Any:
        import pandas as pd

        rows = [
            {"trace": i, "label": self.labels[i], "cut": k / self.config.n_cuts, "score": float(s)}
            for i, row in enumerate(self.scores)
            for k, s in enumerate(row)
        ]
        return pd.DataFrame(rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "mean_trajectory": self.mean_trajectory.tolist(),
            "overconfidence_mean": float(self.overconfidence.mean()),
            "by_label": self.by_label(),
            "n_traces": len(self.labels),
            "n_cuts": self.config.n_cuts,
            "n_samples": self.config.n_samples,
        }

    def _repr_html_(self) -> str:
        from postlens.viz.html import table

        traj = ", ".join(f"{v:.2f}" for v in self.mean_trajectory)
        rows = [
            {"label": k, **{kk: v for kk, v in d.items() if kk != "mean_trajectory"}}
            for k, d in self.by_label().items()
        ]
        return f"<div><b>confidence trajectory</b> [{traj}], overconfidence {self.overconfidence.mean():.3f}{table(rows)}</div>"


def behavioural_trajectories(
    backend: Backend,
    tokenizer: Any,
    traces: Sequence[Trace],
    config: TrajectoryConfig | None = None,
) -> TrajectoryResult:
    """Score every cut of every trace by sampling (batched across traces and cuts, seeded)."""
    cfg = config or TrajectoryConfig()
    prompts = [
        text + cfg.suffix for t in traces for text, _ in cut_points(tokenizer, t, cfg.n_cuts)
    ]
    samples = sample_completions(
        backend,
        tokenizer,
        prompts,
        n=cfg.n_samples,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        seed=cfg.seed,
        batch_size=cfg.batch_size,
        label="trajectories",
    )
    per_cut = cfg.n_cuts + 1
    scores = np.zeros((len(traces), per_cut))
    for j, start in enumerate(range(0, len(samples), cfg.n_samples)):
        trace = traces[j // per_cut]
        group = samples[start : start + cfg.n_samples]
        scores[j // per_cut, j % per_cut] = np.mean(
            [trace.verifier(cfg.suffix + s.completion) for s in group]
        )
    return TrajectoryResult(scores, scores @ cfg.weights, [t.label for t in traces], cfg)
