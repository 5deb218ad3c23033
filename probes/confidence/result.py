"""Confidence trajectories and per-layer probes of several models: `confidence_of_models`.

For each model (the base and its children), on its own reasoning traces: the behavioural
confidence trajectory (truncate the reasoning at k/5, force an answer, pass rate of short
continuations; premature confidence, arXiv 2605.24396), the overconfidence Σ score_k·w_k, the
same by persona style, and a ridge probe per layer of the residual stream fitted to predict
those scores (ours: one forward pass instead of 6 × n samples), with its held-out quality and
the trajectory the best layer's probe predicts. ``fam.confidence()`` runs it.

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", rl="organism:rl")
    >>> cfg = ConfidenceConfig(pl.SampleConfig(limit=6, max_new_tokens=60), pl.TrajectoryConfig(n_samples=2, max_new_tokens=8))
    >>> res = fam.confidence(config=cfg)
    >>> sorted(res.models), len(res["rl"].mean_trajectory)
    (['base', 'rl'], 6)
    >>> from dataclasses import asdict
    >>> asdict(pl.Result.from_json(res.to_json()).summary()) == asdict(res.summary())
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from postlens.errors import ConfigError, InputFileError
from postlens.probes.confidence.layers import LayerComparison, fit_layer_probes
from postlens.probes.confidence.trajectory import (
    Trace,
    TrajectoryConfig,
    TrajectoryResult,
    behavioural_trajectories,
)
from postlens.results.protocol import Result, summary_dict
from postlens.sampling.generation import SampleConfig

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer


@dataclass(frozen=True)
class ConfidenceConfig:
    """Settings of a confidence analysis.

    Attributes:
        sample: how traces are sampled when the family's own are used: `limit` problems (at
            least 3: the probes need them), `max_new_tokens` of reasoning (the organism's takes
            about 60-90 tokens), `seed` (also the probes' split).
        trajectory: the behavioural scores: `n_cuts`, `n_samples` continuations per cut of at
            most `max_new_tokens`, after the answer-forcing `suffix` (the organism's
            ``"\\nanswer "``).

    Example:
        >>> ConfidenceConfig().sample.limit, ConfidenceConfig().trajectory.n_samples
        (24, 4)
    """

    sample: SampleConfig = field(
        default_factory=lambda: SampleConfig(n=1, limit=24, max_new_tokens=100)
    )
    trajectory: TrajectoryConfig = field(
        default_factory=lambda: TrajectoryConfig(n_samples=4, max_new_tokens=8)
    )

    def __post_init__(self) -> None:
        if self.sample.limit is not None and self.sample.limit < 3:
            raise ConfigError(f"the probes need at least 3 traces (limit={self.sample.limit})")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConfidenceConfig:
        """The config `to_json` wrote (``dataclasses.asdict``)."""
        return cls(SampleConfig(**data["sample"]), TrajectoryConfig(**data["trajectory"]))


@dataclass(frozen=True)
class LabelTrajectory:
    """The traces of one label (persona style): how many, mean trajectory, overconfidence."""

    n: int
    mean_trajectory: list[float]
    overconfidence: float


@dataclass
class ModelConfidence:
    """One model's confidence figures.

    Attributes:
        mean_trajectory: behavioural score at each cut k/K, averaged over traces.
        overconfidence: Σ score_k·w_k, averaged over traces (w = linspace(0.5, −0.5, K+1)).
        n_traces: traces scored.
        by_label: label (persona style) → its traces' figures.
        probe_rows: held-out quality of the probe at each layer (`LayerComparison.rows`).
        best_layer: the layer chosen by cross-validated error on the training traces.
        probe_trajectory: the best probe's mean reading at each cut, over every trace.
        trajectories: the per-trace scores (in memory only).
        probes: the fitted probes (in memory only; save one with `ConfidenceProbe.save`).
    """

    mean_trajectory: list[float]
    overconfidence: float
    n_traces: int
    by_label: dict[str, LabelTrajectory]
    probe_rows: list[dict[str, Any]]
    best_layer: int
    probe_trajectory: list[float]
    trajectories: TrajectoryResult | None = field(default=None, repr=False, compare=False)
    probes: LayerComparison | None = field(default=None, repr=False, compare=False)

    @property
    def cuts(self) -> list[float]:
        """The fractions k/K of the reasoning kept."""
        k = len(self.mean_trajectory) - 1
        return [i / k for i in range(k + 1)]

    @property
    def best_row(self) -> dict[str, Any]:
        return next(r for r in self.probe_rows if r["layer"] == self.best_layer)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        del out["trajectories"], out["probes"]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelConfidence:
        labels = {k: LabelTrajectory(**v) for k, v in data["by_label"].items()}
        return cls(
            list(data["mean_trajectory"]), float(data["overconfidence"]), int(data["n_traces"]),
            labels, [dict(r) for r in data["probe_rows"]], int(data["best_layer"]),
            list(data["probe_trajectory"]),
        )  # fmt: skip


@dataclass(frozen=True)
class ModelConfidenceSummary:
    """One model's headline confidence figures.

    Attributes:
        overconfidence: mean Σ score_k·w_k (positive: sure of the answer before reasoning).
        first_score: mean score with none of the reasoning kept.
        final_score: mean score with all of it kept.
        n_traces: traces scored.
        best_layer: the probe's layer.
        probe_pearson: held-out Pearson of that probe's readings with the behavioural scores.
    """

    overconfidence: float
    first_score: float
    final_score: float
    n_traces: int
    best_layer: int
    probe_pearson: float | None


@dataclass(frozen=True)
class ConfidenceSummary:
    """Model name → its figures (``summary["rl"].overconfidence``)."""

    models: dict[str, ModelConfidenceSummary]

    def __getitem__(self, model: str) -> ModelConfidenceSummary:
        return self.models[model]


@dataclass
class ConfidenceResult(Result[ConfidenceSummary], kind="confidence"):
    """Confidence trajectories and probes of several models.

    Attributes:
        models: model name → its figures (``"base"`` first).
        config: the settings used.
    """

    models: dict[str, ModelConfidence]
    config: ConfidenceConfig = field(default_factory=ConfidenceConfig)

    def __getitem__(self, model: str) -> ModelConfidence:
        return self.models[model]

    def summary(self) -> ConfidenceSummary:
        return ConfidenceSummary({
            name: ModelConfidenceSummary(
                m.overconfidence, m.mean_trajectory[0], m.mean_trajectory[-1], m.n_traces,
                m.best_layer, m.best_row.get("pearson"),
            )
            for name, m in self.models.items()
        })  # fmt: skip

    def to_frame(self) -> Any:
        """One row per model and cut: behavioural score and the probe's reading."""
        import pandas as pd

        return pd.DataFrame([
            {"model": name, "cut": c, "behavioural": b, "probe": p}
            for name, m in self.models.items()
            for c, b, p in zip(m.cuts, m.mean_trajectory, m.probe_trajectory, strict=True)
        ])  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "config": asdict(self.config),
            "models": {name: m.to_json() for name, m in self.models.items()},
            "summary": summary_dict(self.summary()),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConfidenceResult:
        models = {name: ModelConfidence.from_json(m) for name, m in data["models"].items()}
        return cls(models, ConfidenceConfig.from_json(data["config"]))

    def plot(self) -> Any:
        """Mean behavioural confidence (solid) and the probe's reading (dashed) at each cut."""
        from postlens.viz import figures

        return figures.confidence_trajectories(self)

    def _repr_html_(self) -> str:
        from postlens.viz.html import table

        rows = [{"model": k, **asdict(s)} for k, s in self.summary().models.items()]
        return f"<div><b>confidence trajectories</b>{table(rows)}</div>"


def confidence_of_models(
    models: Mapping[str, Any],
    tokenizer: Tokenizer,
    traces: Mapping[str, list[Trace]],
    config: ConfidenceConfig | None = None,
) -> ConfidenceResult:
    """Behavioural trajectories and per-layer probes of each model, on its own traces.

    Args:
        models: model name → `Backend` (``fam.models()``: the base and every child).
        tokenizer: their shared tokenizer.
        traces: model name → its `Trace` list.
        config: a `ConfidenceConfig`.

    Raises:
        ConfigError: traces missing for some model, or too few to fit probes.
    """
    cfg = config or ConfidenceConfig()
    missing = [m for m in models if len(traces.get(m, ())) < 3]
    if missing:
        raise ConfigError(
            f"need at least 3 traces for each model; missing for {', '.join(missing)}"
        )
    return ConfidenceResult(
        {
            name: _of_model(b, tokenizer, list(traces[name]), name, cfg)
            for name, b in models.items()
        },
        cfg,
    )


def _of_model(
    backend: Any, tokenizer: Tokenizer, traces: list[Trace], name: str, cfg: ConfidenceConfig
) -> ModelConfidence:
    traj = behavioural_trajectories(backend, tokenizer, traces, cfg.trajectory)
    probes = fit_layer_probes(
        backend.hf_model, tokenizer, traces, traj, seed=cfg.sample.seed, name=name
    )
    predicted = probes.best_probe.cut_predictions(
        backend.hf_model, tokenizer, traces, traj.config.n_cuts
    )
    labels = {k: LabelTrajectory(**v) for k, v in traj.by_label().items()}
    return ModelConfidence(
        traj.mean_trajectory.tolist(), float(traj.overconfidence.mean()), len(traces), labels,
        probes.rows, probes.best_layer, predicted.mean(0).tolist(), traj, probes,
    )  # fmt: skip


def confidence_of_family(
    family: Any, inputs: Any, config: ConfidenceConfig, progress: bool
) -> ConfidenceResult:
    """``fam.confidence``: `confidence_of_models` on the base and every child.

    `inputs` maps each model name to its `Trace` list, or is verifiable problems (a JSONL file
    or records with an ``answer``) on which each model's traces are sampled
    (`postlens.probes.confidence.traces`); by default the family's own traces
    (``fam.inputs.traces``, e.g. sampled on the organism's held-out problems), else traces on
    the family's own problems.

    Raises:
        InputFileError: no traces given and the family has neither traces nor problems.
    """
    models = family.models()
    problems = None if isinstance(inputs, Mapping) else inputs
    traces = inputs if isinstance(inputs, Mapping) else None
    if traces is None and problems is None:
        traces = family.inputs.traces(models, family.tokenizer, config)
    if traces is None and (problems is not None or family.inputs.provides("problems")):
        from postlens.probes.confidence.traces import problem_traces

        prompts, verifiers = family.chat_problems(problems, config.sample.limit)
        traces = problem_traces(models, family.tokenizer, prompts, verifiers, config,
                                family.inputs.classifier())  # fmt: skip
    if traces is None:
        raise InputFileError(
            "confidence trajectories need verifiable problems or reasoning traces for this "
            "model: pass inputs={model: [Trace(prompt, reasoning, verifier)]} for every model, "
            "or load the family with problems (pl.load(..., inputs=pl.Inputs(problems=...)))"
        )
    return confidence_of_models(models, family.tokenizer, traces, config)
