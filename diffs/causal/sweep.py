"""An α sweep's result, and how behaviour and output KL are measured at each α.

Steering (`postlens.diffs.causal.steer`) and weight extrapolation (`postlens.diffs.causal.extrapolate`) both
move a model along one axis and ask, per α: how does it behave (the verifier's pass rate, the
share of each label a classifier gives its completions) and how far are its outputs from each
child? The KL is on-policy, as in RL's Razor: ``KL(p_α ‖ p_child)`` averaged over the tokens of
the α model's own completions (each position's full next-token distribution).

Example:
    >>> row = SweepRow(alpha=0.0, pass_rate=0.5, shares={"careful": 1.0}, kl={"rl": 0.1})
    >>> res = SweepResult("careful", 2, [row])
    >>> Result.from_json(res.to_json()).rows[0].kl
    {'rl': 0.1}
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from postlens.data.batch import Sample
from postlens.results.protocol import Result

if TYPE_CHECKING:
    from postlens.models.types import Model

Classifier = Callable[[str], str]


@dataclass(frozen=True)
class SweepRow:
    """What one α gives.

    Attributes:
        alpha: the multiple.
        pass_rate: share of completions the verifier accepts.
        shares: classifier label → share of completions (empty without a classifier).
        kl: model name → mean on-policy ``KL(p_α ‖ p_model)`` per completion token (nats).
    """

    alpha: float
    pass_rate: float
    shares: dict[str, float] = field(default_factory=dict)
    kl: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepSummary:
    """The headline of a sweep.

    Attributes:
        axis: what was swept (a persona name, ``"vector"``, ``"base→rl"``...).
        layer: the steered layer (``None`` for weight extrapolation).
        pass_rate_at_0: the pass rate at α = 0 (or the smallest α).
        closest_alpha: model name → the α whose outputs are closest to that model (least KL).
        closest_kl: model name → that least KL.
        kl_at_0: model name → the KL at α = 0 (or the smallest α).
    """

    axis: str
    layer: int | None
    pass_rate_at_0: float
    closest_alpha: dict[str, float]
    closest_kl: dict[str, float]
    kl_at_0: dict[str, float]


@dataclass
class SweepResult(Result[SweepSummary], kind="steer"):
    """Behaviour and output KL per α along one axis (steering; see `ExtrapolationResult`).

    Attributes:
        axis: what was swept.
        layer: the steered layer (``None`` for weights).
        rows: one row per α, in sweep order.
        settings: the sampling settings used.
    """

    axis: str
    layer: int | None
    rows: list[SweepRow]
    settings: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> SweepSummary:
        first = min(self.rows, key=lambda r: abs(r.alpha))
        models = list(first.kl)
        closest = {m: min(self.rows, key=functools.partial(_kl_to, m)) for m in models}
        return SweepSummary(
            self.axis, self.layer, first.pass_rate,
            {m: r.alpha for m, r in closest.items()}, {m: r.kl[m] for m, r in closest.items()},
            dict(first.kl),
        )  # fmt: skip

    def to_frame(self) -> Any:
        import pandas as pd

        rows = []
        for r in self.rows:
            row = {"alpha": r.alpha, "pass_rate": r.pass_rate}
            row |= {f"share_{k}": v for k, v in r.shares.items()}
            rows.append(row | {f"kl_{k}": v for k, v in r.kl.items()})
        frame = pd.DataFrame(rows)
        shares = [c for c in frame.columns if c.startswith("share_")]
        return frame.fillna(dict.fromkeys(shares, 0.0))

    def to_json(self) -> dict[str, Any]:
        def clean(d: Mapping[str, float]) -> dict[str, float | None]:
            # Exact (a round trip gives the same summary); NaN has no JSON form, so None.
            return {k: float(v) if math.isfinite(v) else None for k, v in d.items()}

        rows = [{**asdict(r), "shares": clean(r.shares), "kl": clean(r.kl)} for r in self.rows]
        return {"kind": self.kind, "axis": self.axis, "layer": self.layer, "rows": rows,
                "settings": self.settings}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SweepResult:
        def num(d: Mapping[str, Any]) -> dict[str, float]:
            return {k: float("nan") if v is None else float(v) for k, v in d.items()}

        rows = [
            SweepRow(float(r["alpha"]), float(r["pass_rate"]), num(r["shares"]), num(r["kl"]))
            for r in data["rows"]
        ]
        return cls(data["axis"], data["layer"], rows, dict(data.get("settings", {})))

    def plot(self) -> Any:
        from postlens.viz import causal_figures

        return causal_figures.sweep(self)


@dataclass
class ExtrapolationResult(SweepResult, kind="extrapolate"):
    """Behaviour and output KL per α of the weights θ_from + α·(θ_to − θ_from)."""


def behaviour(
    samples: Sequence[Sample],
    verifiers: Sequence[Callable[[str], bool]],
    n: int,
    classifier: Classifier | None = None,
) -> tuple[float, dict[str, float]]:
    """The pass rate of `samples` (n per problem, in order) and each label's share.

    Example:
        >>> s = [Sample("q", "answer 3", [1], [2], "m"), Sample("q", "x", [1], [2], "m")]
        >>> behaviour(s, [lambda c: c.endswith("3")], n=2, classifier=len)
        (0.5, {'8': 0.5, '1': 0.5})
    """
    ok = [verifiers[i // n](s.completion) for i, s in enumerate(samples)]
    shares: dict[str, float] = {}
    if classifier is not None:
        counts = Counter(str(classifier(s.completion)) for s in samples)
        shares = {k: v / len(samples) for k, v in counts.items()}
    return sum(ok) / max(1, len(ok)), shares


@torch.no_grad()
def completion_logprobs(
    hf_model: Model, sample: Sample, steer_state: Any = None
) -> torch.Tensor | None:
    """Log-probabilities ``[completion, vocab]`` predicting each completion token of `sample`.

    `steer_state` (the object `postlens.sampling.steering.steering` yields) is told the prompt width, so
    ``where="generated"`` steers the same columns as during sampling.
    """
    if not sample.completion_ids:
        return None
    ids = torch.tensor([sample.prompt_ids + sample.completion_ids], device=hf_model.device)
    if steer_state is not None:
        steer_state.fixed_width = len(sample.prompt_ids)
    try:
        logits = hf_model(input_ids=ids).logits[0].float()
    finally:
        if steer_state is not None:
            steer_state.fixed_width = None
    start = len(sample.prompt_ids) - 1
    return F.log_softmax(logits[start : start + len(sample.completion_ids)], dim=-1)


def on_policy_kl(
    own: Sequence[torch.Tensor | None], others: Mapping[str, Any], samples: Sequence[Sample]
) -> dict[str, float]:
    """Mean ``KL(p_own ‖ p_other)`` per completion token, for each other model (name → HF model).

    Args:
        own: the α model's log-probabilities per sample (`completion_logprobs`).
        others: model name → Hugging Face causal LM.
        samples: the α model's samples.
    """
    out = {}
    for name, model in others.items():
        total, count = 0.0, 0
        for lp, s in zip(own, samples, strict=True):
            if lp is None:
                continue
            other = completion_logprobs(model, s)
            assert other is not None  # a sample `own` scored is scored by every model
            total += float((lp.exp() * (lp - other)).sum())
            count += lp.shape[0]
        out[name] = total / max(1, count)
    return out


def _kl_to(model: str, row: SweepRow) -> float:
    return row.kl[model]
