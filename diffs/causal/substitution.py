"""Fork substitution decoding: is the post model's gain at the base's high-entropy forks?

See docs/science.md, *Fork substitution*.

Decode with one model (the driver), but at every step where the driver's next-token entropy
(nats, at temperature 1) exceeds τ, sample that token from the other model (the helper)
instead. ``base→post`` drives with the base and hands its forks to the post model; ``post→base``
is the reverse. τ = −∞ hands every position over (the helper exactly), τ = +∞ none (the driver
exactly). A control hands over random positions at the same share (each step, each row with
probability = the share measured at that τ, from a generator of its own). If the gain in
pass@1 comes back while only a few % of positions are handed over, and the random control at
the same share does not bring it back, the change lives at the forks.

When the two models' ids differ (`postlens.models.compat`), both step distributions are taken over the
shared ids only, renormalised there (as every comparison in postlens is), so every sampled token
is one both models can read; a child's own end-of-turn id is then never sampled.

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", rl="organism:rl")
    >>> small = pl.SampleConfig(n=1, limit=2, max_new_tokens=16)
    >>> cfg = SubstitutionConfig(taus=(float("-inf"), 1.0), sample=small)
    >>> res = fam.substitute(config=cfg)["rl"]
    >>> [r.share for r in res.rows if r.direction == "base→post"][0]
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from postlens.errors import ConfigError
from postlens.results.protocol import Result, clean_float
from postlens.sampling.decoding import two_model_decode
from postlens.sampling.generation import SampleConfig

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer

DIRECTIONS = ("base→post", "post→base")


@dataclass(frozen=True)
class SubstitutionConfig:
    """Settings of fork substitution decoding.

    Attributes:
        taus: entropy thresholds (nats); ``-inf`` and ``inf`` give the helper and the driver.
        directions: ``base→post`` and/or ``post→base``.
        control: also run the random-position control at each τ's share.
        sample: how completions are sampled: `n` per problem, `limit` problems (the first
            ones), length, temperature, seed.
        control_seed: the seed of the control's random positions.
    """

    taus: tuple[float, ...] = (float("-inf"), 0.25, 0.5, 1.0, 2.0, float("inf"))
    directions: tuple[str, ...] = DIRECTIONS
    control: bool = True
    sample: SampleConfig = field(default_factory=lambda: SampleConfig(n=4, limit=16))
    control_seed: int = 1

    def __post_init__(self) -> None:
        if not self.taus or any(math.isnan(t) for t in self.taus):
            raise ConfigError("give at least one threshold, none of them NaN")
        if not self.directions or any(d not in DIRECTIONS for d in self.directions):
            raise ConfigError(f"directions must be among {', '.join(DIRECTIONS)}")


def entropy(logits: Tensor) -> Tensor:
    """Entropy (nats) of each row's softmax.

    Example:
        >>> round(float(entropy(torch.zeros(1, 4))[0]), 4) == round(math.log(4), 4)
        True
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def by_entropy(tau: float) -> Any:
    """A combine function: the helper's logits where the driver's entropy exceeds `tau`."""

    def combine(driver: Tensor, helper: Tensor) -> tuple[Tensor, Tensor]:
        hand = entropy(driver) > tau
        return torch.where(hand.unsqueeze(-1), helper, driver), hand

    return combine


def at_random(share: float, seed: int) -> Any:
    """A combine function: the helper's logits at random positions, each with prob. `share`."""
    gen = torch.Generator().manual_seed(seed)  # its own generator: sampling draws are untouched

    def combine(driver: Tensor, helper: Tensor) -> tuple[Tensor, Tensor]:
        hand = (torch.rand(driver.shape[0], generator=gen) < share).to(driver.device)
        return torch.where(hand.unsqueeze(-1), helper, driver), hand

    return combine


@dataclass(frozen=True)
class SubstitutionRow:
    """One direction and threshold.

    Attributes:
        direction: ``base→post`` or ``post→base``.
        tau: the entropy threshold.
        pass_at_1: share of completions the verifier accepts.
        share: share of generated positions handed over.
        control_pass_at_1: the same with random positions at the same share (``None``: not run).
        control_share: the share the control actually handed over.
    """

    direction: str
    tau: float
    pass_at_1: float
    share: float
    control_pass_at_1: float | None = None
    control_share: float | None = None

    @property
    def tau_label(self) -> str:
        return f"{self.tau:g}"


@dataclass(frozen=True)
class SubstitutionSummary:
    """The headline: the driver and helper alone, and the best threshold of ``base→post``.

    Attributes:
        base_pass_at_1: the base alone (``base→post`` at τ = +∞), when run.
        post_pass_at_1: the post model alone (``base→post`` at τ = −∞), when run.
        best_tau: the finite τ of ``base→post`` with the largest pass@1 above its control.
        best_share: the share handed over at `best_tau`.
        recovered: (pass@1 at best_tau − base) / (post − base), when both ends were run.
        control_recovered: the same for the random control at that share.
    """

    base_pass_at_1: float | None
    post_pass_at_1: float | None
    best_tau: float | None
    best_share: float | None
    recovered: float | None
    control_recovered: float | None


@dataclass
class SubstitutionResult(Result[SubstitutionSummary], kind="substitution"):
    """pass@1 and share handed over per direction and τ, with the random control.

    Attributes:
        rows: one per direction and τ.
        settings: the sampling settings.
    """

    rows: list[SubstitutionRow]
    settings: dict[str, Any] = field(default_factory=dict)

    def by_direction(self) -> dict[str, list[SubstitutionRow]]:
        out: dict[str, list[SubstitutionRow]] = {}
        for r in self.rows:
            out.setdefault(r.direction, []).append(r)
        return out

    def summary(self) -> SubstitutionSummary:
        rows = self.by_direction().get("base→post", [])
        ends = {r.tau: r.pass_at_1 for r in rows if math.isinf(r.tau)}
        base, post = ends.get(math.inf), ends.get(-math.inf)
        finite = [r for r in rows if not math.isinf(r.tau)]
        best = max(finite, key=lambda r: r.pass_at_1 - (r.control_pass_at_1 or 0.0), default=None)

        def frac(x: float | None) -> float | None:
            if x is None or base is None or post is None or post == base:
                return None
            return (x - base) / (post - base)

        return SubstitutionSummary(
            base, post, best.tau if best else None, best.share if best else None,
            frac(best.pass_at_1) if best else None,
            frac(best.control_pass_at_1) if best else None,
        )  # fmt: skip

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.rows])

    def to_json(self) -> dict[str, Any]:
        rows = [{**asdict(r), "tau": _tau_json(r.tau)} for r in self.rows]
        for row in rows:
            for key in ("pass_at_1", "share", "control_pass_at_1", "control_share"):
                row[key] = clean_float(row[key])
        return {"kind": self.kind, "rows": rows, "settings": self.settings}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SubstitutionResult:
        rows = [SubstitutionRow(**{**r, "tau": float(r["tau"])}) for r in data["rows"]]
        return cls(rows, dict(data.get("settings", {})))

    def plot(self) -> Any:
        from postlens.viz import causal_figures

        return causal_figures.substitution(self)

    @classmethod
    def plot_children(cls, results: Mapping[str, Result]) -> Any:
        """One figure with every child's traces, each named by its child."""
        from postlens.viz import causal_figures

        fig = None
        for child, res in results.items():
            part = causal_figures.substitution(res)
            for trace in part.data:
                trace.name = f"{child}, {trace.name}"  # keeps its subplot (xaxis / yaxis)
            if fig is None:
                fig = part
            else:
                fig.add_traces(list(part.data))
        return fig


def _tau_json(tau: float) -> float | str:
    return tau if math.isfinite(tau) else ("inf" if tau > 0 else "-inf")


def on_shared_ids(combine: Any, tokens: Any) -> Any:
    """`combine` applied to both models' logits over the ids they share (`restrict_logits`).

    Unchanged when the two vocabularies agree (``tokens`` is a `TokenizerComparison`, or ``None``).
    """
    if tokens is None or (not tokens.masked and tokens.vocab_size[0] == tokens.vocab_size[1]):
        return combine
    from postlens.diffs.divergence import restrict_logits

    masked = torch.tensor(tokens.masked, dtype=torch.long) if tokens.masked else None

    def restricted(driver: Tensor, helper: Tensor) -> tuple[Tensor, Tensor]:
        return combine(restrict_logits(driver, tokens.width, masked),
                       restrict_logits(helper, tokens.width, masked))  # fmt: skip

    return restricted


def _run(driver: Any, helper: Any, tokenizer: Tokenizer, prompts: Sequence[str], verifiers: Sequence[Any],
         combine: Any, cfg: SubstitutionConfig, tokens: Any = None) -> tuple[float, float]:  # fmt: skip
    combine = on_shared_ids(combine, tokens)
    samples, flags = two_model_decode(driver, helper, tokenizer, prompts, combine, n=cfg.sample.n,
                                      max_new_tokens=cfg.sample.max_new_tokens,
                                      temperature=cfg.sample.temperature, seed=cfg.sample.seed)  # fmt: skip
    ok = [verifiers[i // cfg.sample.n](s.completion) for i, s in enumerate(samples)]
    handed = sum(sum(f) for f in flags)
    total = sum(len(f) for f in flags)
    return sum(ok) / len(ok), handed / max(1, total)


def substitution_decoding(
    base: Any, post: Any, tokenizer: Tokenizer, prompts: Sequence[str], verifiers: Sequence[Any],
    config: SubstitutionConfig | None = None, tokens: Any = None,
) -> SubstitutionResult:  # fmt: skip
    """pass@1 and the share handed over for every direction and τ (see the module docstring).

    Args:
        base, post: backends (or causal LMs) sharing `tokenizer`.
        prompts, verifiers: the problems, one verifier each.
        config: thresholds, directions and sampling (`SubstitutionConfig`).
        tokens: the pair's `TokenizerComparison` (``pair.tokens``) when the two models' ids
            differ: both decode over the shared ids.
    """
    cfg = config or SubstitutionConfig()
    rows = []
    for direction in cfg.directions:
        driver, helper = (base, post) if direction == "base→post" else (post, base)
        for tau in cfg.taus:
            passed, share = _run(
                driver, helper, tokenizer, prompts, verifiers, by_entropy(tau), cfg, tokens
            )
            control: tuple[float | None, float | None] = (None, None)
            if cfg.control and not math.isinf(tau):
                control = _run(driver, helper, tokenizer, prompts, verifiers,
                               at_random(share, cfg.control_seed), cfg, tokens)  # fmt: skip
            elif cfg.control:  # nothing or everything handed over: the control is the same run
                control = (passed, share)
            rows.append(SubstitutionRow(direction, float(tau), passed, share, *control))
    settings = {"n": cfg.sample.n, "n_problems": len(prompts), "temperature": cfg.sample.temperature,
                "seed": cfg.sample.seed, "control_seed": cfg.control_seed,
                "max_new_tokens": cfg.sample.max_new_tokens}  # fmt: skip
    return SubstitutionResult(rows, settings)


def substitute_of_family(
    family: Any, inputs: Any, config: SubstitutionConfig, progress: bool
) -> Any:
    """``fam.substitute``: `substitution_decoding` of the base with every child (a `ByChild`).

    `inputs` are verifiable problems (default: the family's own).
    """
    from postlens.results.family import ByChild

    prompts, verifiers = family.chat_problems(inputs, config.sample.limit)
    return ByChild("substitution", {
        child: substitution_decoding(pair.base, pair.post, family.tokenizer, prompts, verifiers,
                                     config, pair.tokens)
        for child, pair in family.pairs.items()
    })  # fmt: skip
