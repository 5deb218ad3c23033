"""The reasoning boundary: unbiased pass@k curves of several models (Yue et al., arXiv 2504.13837).

For each problem, n completions are sampled from each model and checked by a verifier; pass@k is
estimated without bias as 1 − C(n−c, k)/C(n, k) from the c correct ones, then averaged over
problems. If RL only narrows the boundary, the base catches up with, or passes, the RL model at
large k.

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", rl="organism:rl")
    >>> res = fam.passk(config=pl.PassKConfig(sample=pl.SampleConfig(n=4, limit=3)))
    >>> res.summary().n_problems, sorted(res.summary().pass_at_1)
    (3, ['base', 'rl'])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from postlens.backends.base import Backend
from postlens.data.verifiers import VERIFIER_MODES, Verifier
from postlens.diffs.passk.estimator import default_ks, pass_at_k  # noqa: F401  (re-exported)
from postlens.errors import ConfigError
from postlens.models.specs import ResolvedSpec
from postlens.results.protocol import Result
from postlens.sampling.generation import SampleConfig, sample_completions
from postlens.sampling.vllm import check_engine, sample_with_vllm

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer


@dataclass(frozen=True)
class PassKConfig:
    """Settings of a pass@k run.

    Attributes:
        sample: `n` samples per problem and model (k goes up to n), `limit` problems (the
            first ones), length, temperature, seed and batch size.
        ks: the k values (default 1, 2, 4, ..., n).
        verifier: how records' answers are checked (`VERIFIER_MODES`; the organism's problems
            use the organism's verifier).
        engine: who samples: ``"postlens"`` (its own batched sampler, on any backend) or
            ``"vllm"`` (the ``vllm`` extra, on a GPU: `postlens.sampling.vllm`; same prompts,
            stop ids and verifiers, vLLM's own random streams).
        vllm_gpu_memory: the share of GPU memory vLLM may take (``gpu_memory_utilization``;
            postlens's own copy of the models stays loaded beside it).
        keep_completions: keep every completion with its verdict in the result (and its JSON),
            so a surprising pass rate can be audited (`PassAtKResult.samples_frame`).
    """

    sample: SampleConfig = field(
        default_factory=lambda: SampleConfig(n=16, limit=50, batch_size=256)
    )
    ks: tuple[int, ...] = ()
    verifier: str = "last-number"
    engine: str = "postlens"
    vllm_gpu_memory: float = 0.5
    keep_completions: bool = True

    def __post_init__(self) -> None:
        if any(k < 1 or k > self.sample.n for k in self.ks):
            raise ConfigError(f"every k must be in 1..n={self.sample.n}, got {list(self.ks)}")
        if self.verifier not in VERIFIER_MODES:
            raise ConfigError(
                f"unknown verifier {self.verifier!r}; choose one of {', '.join(VERIFIER_MODES)}"
            )
        if not 0 < self.vllm_gpu_memory <= 1:
            raise ConfigError(f"vllm_gpu_memory must be in (0, 1], got {self.vllm_gpu_memory}")
        check_engine(self.engine)


#: The bootstrap behind the intervals and crossing k a result's JSON (and the report) state.
BOOTSTRAP: dict[str, Any] = {"n_boot": 1000, "seed": 0, "level": 0.95}


@dataclass(frozen=True)
class PassAtKSummary:
    """pass@1 and pass@n of each model.

    Attributes:
        n: samples per problem.
        n_problems: problems scored.
        pass_at_1: model → pass@1.
        pass_at_n: model → pass@n (the largest k).
    """

    n: int
    n_problems: int
    pass_at_1: dict[str, float]
    pass_at_n: dict[str, float]


@dataclass
class PassAtKResult(Result[PassAtKSummary], kind="passk"):
    """pass@k per model.

    Attributes:
        curves: model name → {k: pass@k}.
        correct: model name → number correct out of n, per problem.
        n: samples per problem.
        settings: the sampling settings used.
        prompts: the problems' prompts as the models read them (empty when completions are
            not kept).
        completions: model name → per problem, its n ``(completion, verdict)`` pairs (empty
            when not kept).
    """

    curves: dict[str, dict[int, float]]
    correct: dict[str, list[int]]
    n: int
    settings: dict[str, Any] = field(default_factory=dict)
    prompts: list[str] = field(default_factory=list)
    completions: dict[str, list[list[tuple[str, bool]]]] = field(default_factory=dict)

    def summary(self) -> PassAtKSummary:
        first = next(iter(self.correct.values()), [])
        return PassAtKSummary(
            self.n,
            len(first),
            {m: float(sum(pass_at_k(self.n, c, 1) for c in cs) / max(1, len(cs))) for m, cs in self.correct.items()},
            {m: float(sum(c > 0 for c in cs) / max(1, len(cs))) for m, cs in self.correct.items()},
        )  # fmt: skip

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(
            [
                {"model": m, "k": k, "pass_at_k": v}
                for m, c in self.curves.items()
                for k, v in c.items()
            ]
        )

    def samples_frame(self) -> Any:
        """One row per kept completion: model, problem, prompt, completion and verdict.

        Raises:
            ConfigError: the completions were not kept (``keep_completions=False``).
        """
        import pandas as pd

        if not self.completions:
            raise ConfigError("this pass@k run kept no completions (keep_completions=False)")
        return pd.DataFrame([
            {"model": m, "problem": i, "prompt": self.prompts[i] if self.prompts else "",
             "completion": text, "correct": ok}
            for m, per in self.completions.items()
            for i, pairs in enumerate(per) for text, ok in pairs
        ])  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """Curves, counts and settings, with the bootstrap intervals and crossing k
        (`BOOTSTRAP`'s settings; derived, so `from_json` recomputes rather than reads them)."""
        bands, crossings = self.intervals(**BOOTSTRAP), self.crossings(**BOOTSTRAP)
        return {
            "kind": self.kind,
            "n": self.n,
            "curves": {m: {str(k): v for k, v in c.items()} for m, c in self.curves.items()},
            "intervals": {m: {str(k): list(lo_hi) for k, lo_hi in band.items()}
                          for m, band in bands.items()},  # fmt: skip
            "crossings": {m: dataclasses.asdict(c) for m, c in crossings.items()},
            "bootstrap": dict(BOOTSTRAP),
            "correct": self.correct,
            "settings": self.settings,
            "prompts": [str(p) for p in self.prompts],
            "completions": {m: [[[t, ok] for t, ok in pairs] for pairs in per]
                            for m, per in self.completions.items()},
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PassAtKResult:
        curves = {m: {int(k): float(v) for k, v in c.items()} for m, c in data["curves"].items()}
        return cls(
            curves,
            {m: list(c) for m, c in data["correct"].items()},
            int(data["n"]),
            dict(data.get("settings", {})),
            [str(p) for p in data.get("prompts", [])],
            {m: [[(str(t), bool(ok)) for t, ok in pairs] for pairs in per]
             for m, per in data.get("completions", {}).items()},
        )  # fmt: skip

    def plot(self) -> Any:
        from postlens.viz import figures

        return figures.pass_at_k_curves(self)

    def intervals(
        self, n_boot: int = 1000, seed: int = 0, level: float = 0.95
    ) -> dict[str, dict[int, tuple[float, float]]]:
        """Bootstrap confidence intervals over problems: model → k → (low, high).

        Problems are resampled with replacement `n_boot` times and each resample's mean
        pass@k taken (crossing points are noisy: report the spread; docs/science.md, *pass@k*).

        Example:
            >>> res = PassAtKResult({"m": {1: 0.5}}, {"m": [0, 1, 2, 1]}, n=2)
            >>> lo, hi = res.intervals(n_boot=200)["m"][1]
            >>> 0.0 <= lo <= 0.5 <= hi <= 1.0
            True
        """
        from postlens.diffs.passk.bootstrap import bootstrap_curves, percentile_band

        if not self.summary().n_problems:
            return {}
        ks = sorted(next(iter(self.curves.values())))
        boots = bootstrap_curves(self.correct, self.n, ks, n_boot, seed)
        return {m: percentile_band(b, ks, level) for m, b in boots.items()}

    def crossing(
        self, child: str, base: str = "base", n_boot: int = 1000, seed: int = 0,
        level: float = 0.95,
    ) -> Any:  # fmt: skip
        """The smallest k at which `base` catches up with `child`, with a bootstrap interval.

        Returns a `CrossingK` (`postlens.diffs.passk.bootstrap`).
        """
        from postlens.diffs.passk.bootstrap import crossing_interval

        ks = sorted(next(iter(self.curves.values())))
        return crossing_interval(self.correct, self.n, ks, base, child, n_boot, seed, level)

    def crossings(self, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
        """Every later model → where the first (the base) catches up with it (`crossing`).

        Example:
            >>> res = PassAtKResult({"base": {1: 0.5, 2: 1.0}, "rl": {1: 0.75, 2: 1.0}},
            ...                     {"base": [1, 1], "rl": [2, 1]}, n=2)
            >>> res.crossings(n_boot=100)["rl"].k
            2
        """
        if not self.summary().n_problems:
            return {}
        base, *others = self.curves
        return {m: self.crossing(m, base, n_boot, seed, level) for m in others}

    def interval_rows(self) -> list[dict[str, Any]]:
        """One row per k: each model's pass@k with its `BOOTSTRAP` interval, as text, in the
        curves' order (the command's table and the report's).

        Example:
            >>> res = PassAtKResult({"m": {1: 0.5}}, {"m": [1, 1]}, n=2)
            >>> res.interval_rows()
            [{'k': 1, 'm': '0.500 [0.500, 0.500]'}]
        """
        bands = self.intervals(**BOOTSTRAP)

        def cell(m: str, k: int, v: float) -> str:
            return f"{v:.3f}" + (f" [{bands[m][k][0]:.3f}, {bands[m][k][1]:.3f}]" if bands else "")

        ks = next(iter(self.curves.values()))
        return [{"k": k} | {m: cell(m, k, c[k]) for m, c in self.curves.items()} for k in ks]

    def plot_intervals(self, n_boot: int = 1000, seed: int = 0) -> Any:
        """The pass@k curves with bootstrap error bars."""
        from postlens.viz import causal_figures

        return causal_figures.passk_intervals(self, self.intervals(n_boot, seed))

    def _repr_html_(self) -> str:
        from postlens.viz.html import table

        frame = self.to_frame().pivot(index="k", columns="model", values="pass_at_k").reset_index()
        return table(frame.to_dict("records"))


def _sample(
    name: str,
    backend: Backend,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    cfg: PassKConfig,
    progress: bool | None,
    specs: Mapping[str, ResolvedSpec] | None,
    base_spec: ResolvedSpec | None,
) -> list[Any]:
    """`cfg.sample.n` completions per prompt from one model, by the configured engine."""
    if cfg.engine == "vllm":
        settings = {"n": cfg.sample.n, "max_new_tokens": cfg.sample.max_new_tokens, "seed": cfg.sample.seed,
                    "temperature": cfg.sample.temperature, "gpu_memory": cfg.vllm_gpu_memory}  # fmt: skip
        spec = specs[name]  # type: ignore[index]
        return sample_with_vllm(spec, base_spec, backend, tokenizer, prompts, settings, name)
    return sample_completions(
        backend, tokenizer, prompts, n=cfg.sample.n, max_new_tokens=cfg.sample.max_new_tokens,
        temperature=cfg.sample.temperature, seed=cfg.sample.seed, batch_size=cfg.sample.batch_size, label=name,
        progress=progress,
    )  # fmt: skip


def pass_at_k_curves(
    models: Mapping[str, Backend],
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    verifiers: Sequence[Verifier],
    config: PassKConfig | None = None,
    progress: bool | None = None,
    specs: Mapping[str, ResolvedSpec] | None = None,
    base_spec: ResolvedSpec | None = None,
) -> PassAtKResult:
    """Sample n completions per prompt from each model and estimate pass@k.

    Args:
        models: name → backend (e.g. ``fam.models()``: the base and every child).
        tokenizer: the shared tokenizer.
        prompts: one prompt per problem.
        verifiers: one callable per problem, True for a right completion.
        config: n, ks and sampling (`PassKConfig`).
        progress: a progress bar (default: on a terminal only).
        specs: name → where each model came from (``engine="vllm"`` loads them itself).
        base_spec: the base an adapter among `specs` applies to (default: the one it names).

    Example:
        >>> import postlens as pl
        >>> fam = pl.load("organism:base", rl="organism:rl")
        >>> problems = fam.problems(limit=3)
        >>> prompts, verifiers = [p.prompt for p in problems], [p.verify for p in problems]
        >>> res = pass_at_k_curves(fam.models(), fam.tokenizer, prompts, verifiers, PassKConfig(sample=pl.SampleConfig(n=4)))
        >>> sorted(res.curves), sorted(res.curves["rl"])
        (['base', 'rl'], [1, 2, 4])
    """
    cfg = config or PassKConfig()
    if len(prompts) != len(verifiers) or not prompts:
        raise ConfigError("give one verifier per prompt, and at least one prompt")
    ks = list(cfg.ks or default_ks(cfg.sample.n))
    curves, correct, kept = {}, {}, {}
    if cfg.engine == "vllm" and set(models) - set(specs or {}):
        raise ConfigError("engine 'vllm' loads the models itself: give specs for every model")
    for name, backend in models.items():
        samples = _sample(name, backend, tokenizer, prompts, cfg, progress, specs, base_spec)
        n = cfg.sample.n
        verdicts = [
            [(s.completion, bool(verifiers[i](s.completion))) for s in samples[i * n : (i + 1) * n]]
            for i in range(len(prompts))
        ]
        counts = [sum(ok for _, ok in per) for per in verdicts]
        correct[name] = counts
        if cfg.keep_completions:
            kept[name] = verdicts
        curves[name] = {k: sum(pass_at_k(n, c, k) for c in counts) / len(counts) for k in ks}
    settings = {
        "temperature": cfg.sample.temperature,
        "max_new_tokens": cfg.sample.max_new_tokens,
        "seed": cfg.sample.seed,
        "n_problems": len(prompts),
    }
    shown = [str(p) for p in prompts] if cfg.keep_completions else []
    return PassAtKResult(curves, correct, cfg.sample.n, settings, shown, kept)


def passk_of_family(family: Any, inputs: Any, config: PassKConfig, progress: bool) -> PassAtKResult:
    """``fam.passk``: `pass_at_k_curves` of the base and every child on verifiable problems.

    `inputs` are records with an ``answer`` (checked with ``config.verifier``); by default the
    family's own problems, with their own verifiers.
    """
    prompts, verifiers = family.chat_problems(inputs, config.sample.limit, config.verifier)
    specs = {"base": family.first.base_spec} | {k: p.post_spec for k, p in family.pairs.items()}
    return pass_at_k_curves(
        family.models(), family.tokenizer, prompts, verifiers, config, progress, specs,
        family.first.base_spec,
    )  # fmt: skip
