"""A model family: a base and its named post-trained children, with every analysis as a method.

``pl.load(base, sft=..., rl=...)`` loads the base once and each child beside it on one backend;
``fam.forks(...)``, ``fam.activations(...)``, ``fam.weights()``, ``fam.passk(...)``,
``fam.personas(...)``, ``fam.confidence(...)`` run an analysis over every child and return one
result per child, each with the common protocol (`postlens.results.protocol.Result`). Each method takes
its options as one config dataclass; the CLI builds its options from the same dataclasses.

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", sft="organism:sft", rl="organism:rl")
    >>> fam.children
    ['sft', 'rl']
    >>> seqs = fam.sample(["Q: 12 + 34 = ?\\n"], pl.SampleConfig(n=2, max_new_tokens=24))
    >>> forks = fam.forks(seqs)
    >>> forks["rl"].summary().agreement > 0.5
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from postlens.backends.base import Backend
from postlens.data.inputs import PromptSource, prompt_records
from postlens.data.sequences import Sequence, sequences_for
from postlens.errors import ConfigError, NotSupportedError
from postlens.pair import DEFAULT_BACKEND, ModelPair
from postlens.progress import show_progress
from postlens.results.family import ByChild
from postlens.sampling.generation import SampleConfig

if TYPE_CHECKING:  # the configs and results named in signatures; imported lazily at run time
    from postlens.diffs.activations.compute import ActivationConfig
    from postlens.diffs.forks.compute import ForkConfig
    from postlens.diffs.passk.compute import PassAtKResult, PassKConfig
    from postlens.diffs.personas.analysis import PersonaConfig, PersonaInputs
    from postlens.diffs.personas.result import PersonaAnalysis
    from postlens.diffs.weights.compare import FamilyWeightDiff, WeightDiffConfig
    from postlens.probes.confidence.result import ConfidenceConfig, ConfidenceResult
    from postlens.probes.confidence.trajectory import Trace
    from postlens.reporting import Report, ReportConfig

#: What a fork or activation analysis reads: prompts (sampled from each child), or the
#: sequences `Family.sample` returned (child name → sequences).
Data = PromptSource | Mapping[str, list[Sequence]]


def load(
    base: str,
    post: str | None = None,
    *,
    sft: str | None = None,
    rl: str | None = None,
    children: Mapping[str, str] | None = None,
    backend: str = DEFAULT_BACKEND,
    dtype: str | None = None,
    device: str | None = None,
    device_map: str | dict[str, Any] | None = None,
    trust_remote_code: bool = False,
    remote: bool = False,
    chat_template: str | None = None,
) -> Family:
    """Load a base and its children side by side (the base once), checked comparable.

    Args:
        base: the base model's spec (``organism:base``, a local folder, a hub id).
        post: a single post-trained child (named ``"post"``).
        sft: an SFT child (named ``"sft"``).
        rl: an RL child (named ``"rl"``).
        children: more children, name → spec.
        backend: ``"nnsight"`` or ``"transformer_lens"`` (TransformerBridge).
        dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        device: a torch device (default CPU).
        device_map: passed to accelerate (e.g. ``"auto"``) for models larger than one device.
        trust_remote_code: let checkpoints run their own code. Off by default.
        remote: nnsight only: run traces on NDIF.
        chat_template: whose chat template formats prompts, ``"post"``, ``"base"`` or
            ``"none"`` (`postlens.models.chat`); default ``post`` when its tokenizer has one.

    Example:
        >>> import postlens as pl
        >>> pl.load("organism:base", rl="organism:rl").children
        ['rl']
    """
    named = {"post": post, "sft": sft, "rl": rl}
    specs = {k: v for k, v in named.items() if v is not None} | dict(children or {})
    if not specs:
        raise ConfigError("give at least one post-trained child (post=, sft=, rl= or children=)")
    pairs = ModelPair.load_family(
        base, specs, backend, device, dtype, device_map, trust_remote_code, remote, chat_template
    )  # type: ignore[arg-type]
    return Family(pairs)


def load_models(
    specs: list[str], backend: str = DEFAULT_BACKEND, dtype: str | None = None,
    device: str | None = None,
) -> tuple[dict[str, Backend], Any]:  # fmt: skip
    """Models that need not be one family (e.g. for pass@k), sharing one tokenizer.

    Each is named after its spec (``organism:rl`` → ``rl``, a folder → its name).

    Raises:
        IncompatibleModelsError: two regular vocabularies differ (special tokens may).
    """
    from pathlib import Path

    from postlens.errors import IncompatibleModelsError
    from postlens.models.compat import tokenizer_differences
    from postlens.models.dtypes import device_and_map, resolve_dtype
    from postlens.models.loading import LoadOptions, load_hf_model, load_tokenizer
    from postlens.models.preflight import check_memory
    from postlens.models.specs import resolve_spec
    from postlens.pair import make_backend

    resolved = [resolve_spec(s) for s in specs]  # every spec checked before any model loads
    dtype, (device, device_map) = resolve_dtype(dtype, resolved), device_and_map(device)
    options, out, tokenizer = LoadOptions(device, dtype, device_map), {}, None
    check_memory(resolved, dtype, device, device_map)
    for spec, res in zip(specs, resolved, strict=True):
        tok = load_tokenizer(res, options)
        if tokenizer is None:
            tokenizer = tok
        elif diffs := tokenizer_differences(tokenizer, tok):
            raise IncompatibleModelsError(f"{specs[0]} and {spec}: " + " | ".join(diffs))
        name = spec.split(":", 1)[1] if spec.startswith("organism:") else Path(spec).name or spec
        name = spec if name in out else name
        out[name] = make_backend(backend, load_hf_model(res, options), tok, res.location)
    return out, tokenizer


@dataclass
class Family:
    """A base and its children, as one `ModelPair` per child sharing the base.

    Attributes:
        pairs: child name → pair (base, child).
    """

    pairs: dict[str, ModelPair]

    def __post_init__(self) -> None:
        if not self.pairs:
            raise ConfigError("a family needs at least one child")

    @classmethod
    def of(cls, pair: ModelPair, name: str = "post") -> Family:
        """A family of one child from a pair already loaded (e.g. `ModelPair.from_models`)."""
        return cls({name: pair})

    # --- who is in it -----------------------------------------------------------------
    @property
    def children(self) -> list[str]:
        return list(self.pairs)

    @property
    def first(self) -> ModelPair:
        return next(iter(self.pairs.values()))

    @property
    def base(self) -> Backend:
        return self.first.base

    @property
    def tokenizer(self) -> Any:
        return self.first.tokenizer

    @property
    def base_spec(self) -> str:
        return self.first.base_spec.spec

    @property
    def specs(self) -> dict[str, str]:
        """Child name → the spec it was loaded from."""
        return {k: p.post_spec.spec for k, p in self.pairs.items()}

    @property
    def pair(self) -> ModelPair:
        """The only pair of a one-child family."""
        if len(self.pairs) != 1:
            raise ConfigError(f"this family has {len(self.pairs)} children; use fam[name]")
        return self.first

    def __getitem__(self, child: str) -> ModelPair:
        if child not in self.pairs:
            raise KeyError(f"no child {child!r}; this family has {', '.join(self.pairs)}")
        return self.pairs[child]

    def models(self) -> dict[str, Backend]:
        """Every model of the family by name: ``base`` first, then the children."""
        return {"base": self.base} | {k: p.post for k, p in self.pairs.items()}

    # --- inputs -------------------------------------------------------------------------
    def sample(
        self, prompts: PromptSource = None, config: SampleConfig | None = None
    ) -> dict[str, list[Sequence]]:
        """Sequences to compare on: each child's own samples (or the base's, or given ones).

        Records with a completion are scored as given (the same for every child); otherwise
        `config.n` completions per prompt are sampled from each child (``source="post"``) or
        from the base (``source="base"``).
        """
        cfg = config or SampleConfig()
        records = prompt_records(prompts, self.base_spec, cfg.limit)
        given = [r for r in records if r.completion is not None]
        if given and len(given) != len(records):
            lines = ", ".join(str(r.line) for r in records if r.completion is None)
            raise ConfigError(f"some prompts have a completion and some do not (lines {lines})")
        return {
            child: sequences_for(pair, records, 0 if given else cfg.n, cfg.source, **cfg.generate_kwargs())
            for child, pair in self.pairs.items()
        }  # fmt: skip

    def _sequences(self, data: Data, sample: SampleConfig | None) -> dict[str, list[Sequence]]:
        if isinstance(data, Mapping):
            missing = [c for c in self.pairs if c not in data]
            if missing:
                raise ConfigError(f"no sequences given for child(ren) {', '.join(missing)}")
            return {c: list(data[c]) for c in self.pairs}
        return self.sample(data, sample)

    # --- analyses ---------------------------------------------------------------------
    def forks(
        self,
        data: Data = None,
        config: ForkConfig | None = None,
        sample: SampleConfig | None = None,
        progress: bool | None = None,
    ) -> ByChild:
        """Fork tokens of each child against the base (`postlens.diffs.forks.compute`).

        Args:
            data: prompts (sampled from each child with `sample`) or `sample`'s sequences.
            config: a `ForkConfig`.
            sample: how to sample when `data` holds prompts.
            progress: a progress bar (default: on a terminal only).
        """
        from postlens.diffs.forks.compute import score_forks

        return self._per_child("forks", score_forks, data, config, sample, progress)

    def activations(
        self,
        data: Data = None,
        config: ActivationConfig | None = None,
        sample: SampleConfig | None = None,
        progress: bool | None = None,
    ) -> ByChild:
        """Per-layer activation shifts, logit-lens KL and patching (`postlens.diffs.activations.compute`).

        Arguments as for `forks`; `config` is an `ActivationConfig`.
        """
        from postlens.diffs.activations.compute import activation_shifts

        return self._per_child("activations", activation_shifts, data, config, sample, progress)

    def _per_child(
        self, kind: str, analyse: Callable[..., Any], data: Data, config: Any,
        sample: SampleConfig | None,
        progress: bool | None,
    ) -> ByChild:  # fmt: skip
        """`analyse(pair, sequences, config, progress)` for every child, on its own sequences."""
        seqs, show = self._sequences(data, sample), show_progress(progress)
        return ByChild(kind, {c: analyse(p, seqs[c], config, show) for c, p in self.pairs.items()})

    def weights(
        self, config: WeightDiffConfig | None = None, progress: bool | None = None
    ) -> FamilyWeightDiff:
        """Weight shifts of every child, streamed from the checkpoints (`postlens.diffs.weights.compare`).

        Returns a `FamilyWeightDiff` (one `WeightDiff` per child, and the cosine between the
        first two children's updates).
        """
        from postlens.diffs.weights.compare import compare_children

        if any(p.post_spec.kind == "memory" for p in self.pairs.values()):
            raise NotSupportedError(
                "weights are read from checkpoint files; this family was built from models in "
                "memory (save them with save_pretrained and load the folders)"
            )
        return compare_children(self.base_spec, self.specs, config, show_progress(progress))

    def passk(
        self,
        problems: PromptSource = None,
        config: PassKConfig | None = None,
        progress: bool | None = None,
    ) -> PassAtKResult:
        """pass@k of the base and every child on verifiable problems (`postlens.diffs.passk.compute`).

        Args:
            problems: records with an ``answer`` (a JSONL file or `PromptRecord`s); the
                organism's held-out problems when ``None`` and the base is the organism.
            config: a `PassKConfig`.
        """
        from postlens.data.inputs import verifiable_problems
        from postlens.diffs.passk.compute import PassKConfig, pass_at_k_curves

        cfg = config or PassKConfig()
        prompts, verifiers = verifiable_problems(problems, self.base_spec, cfg.limit, cfg.verifier)
        prompts = [self.first.chat.format(p, f"problem {i + 1}") for i, p in enumerate(prompts)]
        base = self.first.base_spec
        specs = {"base": base} | {k: p.post_spec for k, p in self.pairs.items()}
        return pass_at_k_curves(
            self.models(), self.tokenizer, prompts, verifiers, cfg, show_progress(progress),
            specs, base,
        )  # fmt: skip

    def personas(
        self, inputs: PersonaInputs | None = None, config: PersonaConfig | None = None
    ) -> PersonaAnalysis:
        """Persona directions of the base and each child's move along them (`PersonaAnalysis`).

        Args:
            inputs: a `PersonaInputs` (tagged sets, untagged prompts, corpus); the organism's
                when ``None`` and the base is the organism.
            config: a `PersonaConfig` (SAE, thresholds, seed).
        """
        from postlens.diffs.personas.analysis import (
            PersonaConfig,
            analyse_personas,
            persona_inputs,
        )
        from postlens.models.chat import format_inputs

        cfg = config or PersonaConfig()
        data = inputs if inputs is not None else persona_inputs(self.base_spec, cfg)
        return analyse_personas(self.pairs, format_inputs(self.first.chat, data), cfg)

    def confidence(
        self,
        traces: Mapping[str, list[Trace]] | None = None,
        config: ConfidenceConfig | None = None,
    ) -> ConfidenceResult:
        """Confidence trajectories and per-layer probes of every model (`ConfidenceResult`).

        Args:
            traces: model name → `Trace` list; sampled on the organism's problems when ``None``
                and the base is the organism.
            config: a `ConfidenceConfig`.
        """
        from postlens.probes.confidence.result import ConfidenceConfig, confidence_of_models

        cfg = config or ConfidenceConfig()
        return confidence_of_models(self.models(), self.tokenizer, self.base_spec, traces, cfg)

    def crosscoder(
        self, texts: Any = None, config: Any = None, progress: bool | None = None
    ) -> Any:
        """Crosscoders of the base and each child (`postlens.diffs.crosscoder.links`).

        Args:
            texts: the corpus (a sample of the organism's when ``None`` on the organism).
            config: a `CrosscoderConfig`; with ``three_way`` one crosscoder over the base and
                every child (one `CrosscoderResult`), otherwise one per child (a `ByChild`).
            progress: a training progress bar (default: on a terminal only).
        """
        from postlens.diffs.crosscoder.links import crosscoder_family

        return crosscoder_family(self, texts, config, show_progress(progress))

    def report(
        self, config: ReportConfig | None = None, on_section: Callable[..., None] | None = None
    ) -> Report:
        """Run the report's sections on this family (`postlens.reporting`); returns a `Report`."""
        from postlens.reporting import ReportConfig, run_report

        cfg = config or ReportConfig()
        return run_report(self, cfg, on_section)

    # --- causal tests (issue 19) --------------------------------------------------------
    def steer(
        self, vector: Any = None, config: Any = None, problems: PromptSource = None,
        classifier: Any = None,
    ) -> Any:  # fmt: skip
        """Steer the base along a persona direction (or `vector`) per α (`postlens.diffs.causal.steer`).

        Returns a `SweepResult`: per α the pass rate, the classifier's label shares and the
        on-policy KL to the base and every child.
        """
        from postlens.diffs.causal.steer import steer_family

        return steer_family(self, vector, config, problems, classifier)

    def extrapolate(
        self, child: str, config: Any = None, problems: PromptSource = None,
        classifier: Any = None,
    ) -> Any:  # fmt: skip
        """Models at θ_start + α·(θ_child − θ_start) per α (`postlens.diffs.causal.extrapolate`)."""
        from postlens.diffs.causal.extrapolate import extrapolate_family

        return extrapolate_family(self, child, config, problems, classifier)

    def substitute(self, config: Any = None, problems: PromptSource = None) -> Any:
        """Fork substitution decoding of the base with each child (`postlens.diffs.causal.substitution`)."""
        from postlens.diffs.causal.substitution import substitute_family

        return substitute_family(self, config, problems)

    def adl(
        self, texts: Any = None, config: Any = None, problems: PromptSource = None,
        classifier: Any = None,
    ) -> Any:  # fmt: skip
        """The Activation Difference Lens of each child (`postlens.diffs.adl.compute`; a `ByChild`)."""
        from postlens.diffs.adl.compute import adl_family

        return adl_family(self, texts, config, problems, classifier)

    def fork_train(self, config: Any = None, problems: PromptSource = None) -> Any:
        """Train copies of the base at each child's forks vs random positions (`postlens.diffs.causal.fork_training`)."""
        from postlens.diffs.causal.fork_training import fork_train_family

        return fork_train_family(self, config, problems)
