"""Behavioural confidence trajectories (arXiv 2605.24396, the paper's definition).

A trace (prompt + reasoning) is cut after a fraction k/K of its reasoning tokens (k = 0..K), an
answer-forcing suffix is appended, n short continuations are sampled, and the score at k is their
pass rate under a verifier. Overconfidence = Σ_k score_k · w_k with w = linspace(0.5, −0.5, K+1):
high when the answer is already right early and the rest of the reasoning adds little.

Cuts are counted in tokens of the reasoning alone (the prompt is always kept whole); the cut text
is decoded back to a string for sampling, which is exact for character-level tokenizers and may
shift a BPE boundary by a token for others. Any `Backend` works (``pair.base``/``pair.post`` on
either library), as does a bare Hugging Face model (e.g. inside a training loop): sampling goes
through `postlens.sampling.generation.sample_completions`, batched across traces and cuts, seeded.

The weights sum to zero, so a flat trajectory (all right or all wrong from k = 0 on, or a trace
with no reasoning at all) has overconfidence 0; it is positive when the score falls as reasoning
is added and negative when the reasoning earns the answer (the ideal is −0.5 ... −0.9 for a trace
whose answer becomes certain only late).

Example (the organism's careful reasoning for 347 + 285, without its ``answer 632`` line):
    >>> import postlens as pl
    >>> from postlens.data.verifiers import answer_verifier
    >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
    >>> reasoning = "7+5+0=12 write 2 carry 1 got 2\\n4+8+1=13 write 3 carry 1 got 32\\n3+2+1=6 write 6 carry 0 got 632"
    >>> traces = [Trace("Q: 347+285=?\\n", reasoning, answer_verifier(632, "answer-line"))]
    >>> cfg = TrajectoryConfig(n_cuts=2, n_samples=4, max_new_tokens=5)
    >>> traj = behavioural_trajectories(pair.post, None, traces, cfg)
    >>> traj.mean_trajectory.tolist(), float(traj.overconfidence.mean())  # earned by the reasoning
    ([0.0, 0.0, 1.0], -0.5)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from jaxtyping import Bool, Float

from postlens.backends.base import Backend, RunOutput
from postlens.errors import ConfigError, NotSupportedError
from postlens.sampling.generation import sample_completions

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer


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
            raise ConfigError("n_cuts, n_samples and max_new_tokens must be positive")
        if self.temperature < 0 or self.batch_size < 1:
            raise ConfigError("temperature must be >= 0 and batch_size positive")

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
        correct: whether the trace's own final answer was right, when known (probes are
            evaluated on predicting it).
        suffix: the answer-forcing suffix of this trace (``None``: the trajectory config's).
    """

    prompt: str
    reasoning: str
    verifier: Callable[[str], bool]
    label: str = ""
    correct: bool | None = None
    suffix: str | None = None


def cut_points(tokenizer: Tokenizer, trace: Trace, n_cuts: int) -> list[tuple[str, int]]:
    """The K+1 prefixes (text, token count of prompt + reasoning kept) of a trace."""
    prompt_ids = tokenizer(trace.prompt).input_ids
    reasoning_ids = tokenizer(trace.reasoning, add_special_tokens=False).input_ids
    out = []
    for k in range(n_cuts + 1):
        keep = round(k * len(reasoning_ids) / n_cuts)
        text = trace.prompt + str(tokenizer.decode(reasoning_ids[:keep]))
        out.append((text, len(prompt_ids) + keep))
    return out


@dataclass
class TrajectoryResult:
    """Scores per trace and cut.

    Attributes:
        scores: pass rate at each cut, shape ``[n_traces, K+1]``.
        overconfidence: Σ score_k · w_k per trace.
        labels: each trace's label.
        config: the settings used.
        correct: each trace's own final-answer correctness, when every trace knew it.
    """

    scores: Float[np.ndarray, "n_traces cuts"]
    overconfidence: Float[np.ndarray, " n_traces"]
    labels: list[str]
    config: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    correct: Bool[np.ndarray, " n_traces"] | None = None

    @property
    def mean_trajectory(self) -> Float[np.ndarray, " cuts"]:
        """The score at each cut, averaged over traces."""
        return self.scores.mean(0)

    @property
    def cuts(self) -> Float[np.ndarray, " cuts"]:
        """The fractions k/K of the reasoning kept."""
        return np.arange(self.scores.shape[1]) / self.config.n_cuts

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
        """One row per trace and cut: trace, label, cut (k/K), score, overconfidence."""
        import pandas as pd

        rows = [
            {
                "trace": i,
                "label": self.labels[i],
                "cut": k / self.config.n_cuts,
                "score": float(s),
                "overconfidence": float(self.overconfidence[i]),
            }
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
        return (
            f"<div><b>confidence trajectory</b> [{traj}], overconfidence "
            f"{self.overconfidence.mean():.3f} ({len(self.labels)} traces){table(rows)}</div>"
        )


def behavioural_trajectories(
    backend: Backend | Any,
    tokenizer: Tokenizer,
    traces: Sequence[Trace],
    config: TrajectoryConfig | None = None,
    progress: bool = False,
) -> TrajectoryResult:
    """Score every cut of every trace by sampling (batched across traces and cuts, seeded).

    Args:
        backend: a `Backend` (e.g. ``pair.post``) or a bare Hugging Face causal LM.
        tokenizer: its tokenizer; ``None`` takes the backend's.
        traces: the traces to cut.
        config: K, n, continuation length, suffix, temperature, seed.
        progress: show a progress bar while sampling.

    Returns:
        The pass rate at each cut of each trace, and the overconfidence of each trace.

    Example:
        >>> import postlens as pl
        >>> from postlens.data.verifiers import answer_verifier
        >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
        >>> reasoning = "7+5+0=12 write 2 carry 1 got 2\\n4+8+1=13 write 3 carry 1 got 32\\n3+2+1=6 write 6 carry 0 got 632"
        >>> traces = [Trace("Q: 347+285=?\\n", reasoning, answer_verifier(632, "answer-line"))]
        >>> cfg = TrajectoryConfig(n_samples=2, max_new_tokens=5)
        >>> frame = behavioural_trajectories(pair.post, None, traces, cfg).to_frame()
        >>> frame.shape, list(frame.columns)  # one row per trace and cut (K = 5: six cuts)
        ((6, 5), ['trace', 'label', 'cut', 'score', 'overconfidence'])
    """
    cfg = config or TrajectoryConfig()
    if not traces:
        raise ConfigError("no traces to score")
    if not isinstance(backend, Backend):
        if tokenizer is None:
            raise ConfigError("a bare model needs its tokenizer")
        backend = _GenerateOnly(backend, tokenizer)
    tokenizer = tokenizer or backend.tokenizer
    suffixes = [cfg.suffix if t.suffix is None else t.suffix for t in traces]
    prompts = [
        text + suffix
        for t, suffix in zip(traces, suffixes, strict=True)
        for text, _ in cut_points(tokenizer, t, cfg.n_cuts)
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
        progress=progress,
    )
    per_cut = cfg.n_cuts + 1
    scores = np.zeros((len(traces), per_cut))
    # `samples` is prompt-major: n continuations of cut 0 of trace 0, then of cut 1, ...
    for j, start in enumerate(range(0, len(samples), cfg.n_samples)):
        trace, suffix = traces[j // per_cut], suffixes[j // per_cut]
        group = samples[start : start + cfg.n_samples]
        scores[j // per_cut, j % per_cut] = np.mean(
            [bool(trace.verifier(suffix + s.completion)) for s in group]
        )
    known = [t.correct for t in traces]
    correct = None if None in known else np.array(known, dtype=bool)
    return TrajectoryResult(
        scores, scores @ cfg.weights, [t.label for t in traces], cfg, correct=correct
    )


class _GenerateOnly(Backend):
    """A bare Hugging Face model seen as a `Backend` for sampling only (no hooks needed)."""

    name = "plain"

    def run(self, *args: Any, **kwargs: Any) -> RunOutput:
        raise NotSupportedError("a bare model wrapped for sampling has no hooks")
