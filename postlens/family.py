"""A model family: a base and its named post-trained children, with every analysis as a method.

``pl.load(base, sft=..., rl=...)`` loads the base once and each child beside it on one backend.
Every registered analysis (`postlens.registry`) is a method with one signature,
``fam.<analysis>(inputs=None, config=None, *, progress=None)``: `inputs` is what it reads
(prompts, problems, texts...; default: the family's own, `Family.inputs`), `config` its config
dataclass, and it returns a result with the common protocol (`postlens.results.protocol`).

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", sft="organism:sft", rl="organism:rl")
    >>> fam.children
    ['sft', 'rl']
    >>> seqs = fam.sample(["Q: 12+34=?"], pl.SampleConfig(n=2, max_new_tokens=24))
    >>> forks = fam.forks(seqs)
    >>> forks["rl"].summary().agreement > 0.5
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from postlens import registry
from postlens.backends.base import Backend
from postlens.data.defaults import DEFAULT_PROBLEMS, Chain, InputProvider, Inputs, provider_for
from postlens.data.inputs import PromptSource, prompt_records, verifiable_problems
from postlens.data.prompts import PromptRecord
from postlens.data.sequences import Sequence, sequences_for
from postlens.data.verifiers import Problem, Verifier
from postlens.errors import ConfigError, InputFileError
from postlens.pair import DEFAULT_BACKEND, BackendName, ModelPair
from postlens.progress import show_progress
from postlens.sampling.generation import SampleConfig

if TYPE_CHECKING:
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
    backend: BackendName = DEFAULT_BACKEND,
    dtype: str | None = None,
    device: str | None = None,
    device_map: str | dict[str, Any] | None = None,
    trust_remote_code: bool = False,
    remote: bool = False,
    chat_template: str | None = None,
    inputs: Inputs | InputProvider | None = None,
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
        inputs: the family's default inputs (problems, classifier, texts, ...), before those
            of the base's folder and of its spec scheme (`postlens.data.defaults`).

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
    )
    first = next(iter(pairs.values())).base_spec
    return Family(pairs, provider_for(base, first.path, inputs))


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

    Every registered analysis is a method (``fam.forks``, ``fam.weights``, ...; see
    `postlens.registry`), added below from the registry.

    Attributes:
        pairs: child name → pair (base, child).
        inputs: the family's default inputs (`postlens.data.defaults.InputProvider`).
    """

    pairs: dict[str, ModelPair]
    inputs: InputProvider = field(default_factory=InputProvider)

    def __post_init__(self) -> None:
        if not self.pairs:
            raise ConfigError("a family needs at least one child")

    @classmethod
    def of(cls, pair: ModelPair, name: str = "post") -> Family:
        """A family of one child from a pair already loaded (e.g. `ModelPair.from_models`)."""
        base = pair.base_spec  # models built in memory have no folder to hold an inputs file
        return cls(
            {name: pair}, provider_for(base.spec, None if base.kind == "memory" else base.path)
        )

    def with_inputs(self, inputs: Inputs | InputProvider) -> Family:
        """The same models, with `inputs` asked before the family's own defaults.

        Example:
            >>> import postlens as pl
            >>> fam = pl.load("organism:base", rl="organism:rl")
            >>> mine = fam.with_inputs(pl.Inputs(classifier={"short": "^.{0,20}$"}))
            >>> mine.inputs.classifier()("answer 4"), mine.inputs.problems(1) is not None
            ('short', True)
        """
        given = inputs.provider() if isinstance(inputs, Inputs) else inputs
        return dataclasses.replace(self, inputs=Chain((given, self.inputs)))

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
    def prompts(self, source: PromptSource = None, limit: int | None = None) -> list[PromptRecord]:
        """Prompt records: from `source`, else the family's default problems (with answers).

        Raises:
            InputFileError: nothing given and the family has no default problems.
        """
        if source is not None:
            return prompt_records(source, limit)
        problems = self.inputs.problems(limit or DEFAULT_PROBLEMS)
        if problems is None:
            raise InputFileError(
                "give prompts (a JSONL file with a 'prompt' field, a text file with one prompt "
                "per line, or a list of strings): this family has no default problems"
            )
        return [PromptRecord(p.prompt, answer=p.answer, line=i + 1) for i, p in enumerate(problems)]

    def problems(
        self, source: PromptSource = None, limit: int | None = None, verifier: str = "last-number"
    ) -> list[Problem]:
        """Verifiable problems: from `source` (records with answers), else the family's own.

        The prompts are returned as given; `ModelPair.chat` formats them for the models.

        Raises:
            InputFileError: a record without an answer, or nothing given and no default.
        """
        if source is not None:
            return verifiable_problems(source, limit, verifier)
        problems = self.inputs.problems(limit or DEFAULT_PROBLEMS)
        if problems is None:
            raise InputFileError(
                "give verifiable problems (records with 'prompt' and 'answer'): this family has "
                f"no default problems (inputs: {self.inputs.source})"
            )
        return problems

    def chat_problems(
        self, source: PromptSource = None, limit: int | None = None, verifier: str = "last-number"
    ) -> tuple[list[str], list[Verifier]]:
        """`problems` formatted for the models (`ModelPair.chat`), and their verifiers.

        Example:
            >>> import postlens as pl
            >>> prompts, verifiers = pl.load("organism:base", rl="organism:rl").chat_problems(limit=2)
            >>> len(prompts), verifiers[0]("answer -1")
            (2, False)
        """
        return self.chat_format(self.problems(source, limit, verifier))

    def chat_format(self, problems: list[Problem]) -> tuple[list[str], list[Verifier]]:
        """`problems`' prompts formatted for the models (`ModelPair.chat`), and their verifiers."""
        chat = self.first.chat
        prompts = [chat.format(p.prompt, f"problem {i + 1}") for i, p in enumerate(problems)]
        return prompts, [p.verify for p in problems]

    def sample(
        self, prompts: PromptSource = None, config: SampleConfig | None = None
    ) -> dict[str, list[Sequence]]:
        """Sequences to compare on: each child's own samples (or the base's, or given ones).

        Records with a completion are scored as given (the same for every child); otherwise
        `config.n` completions per prompt are sampled from each child (``source="post"``) or
        from the base (``source="base"``). Without prompts, the family's default problems.
        """
        cfg = config or SampleConfig()
        records = self.prompts(prompts, cfg.limit)
        given = [r for r in records if r.completion is not None]
        if given and len(given) != len(records):
            lines = ", ".join(str(r.line) for r in records if r.completion is None)
            raise ConfigError(f"some prompts have a completion and some do not (lines {lines})")
        return {
            child: sequences_for(pair, records, 0 if given else cfg.n, cfg.source, **cfg.generate_kwargs())
            for child, pair in self.pairs.items()
        }  # fmt: skip

    def sequences(self, data: Data, sample: SampleConfig | None) -> dict[str, list[Sequence]]:
        """Each child's sequences: `data` when it maps children to sequences, else sampled."""
        if isinstance(data, Mapping):
            missing = [c for c in self.pairs if c not in data]
            if missing:
                raise ConfigError(f"no sequences given for child(ren) {', '.join(missing)}")
            return {c: list(data[c]) for c in self.pairs}
        return self.sample(data, sample)

    # --- analyses ---------------------------------------------------------------------
    def run(
        self, name: str, inputs: Any = None, config: Any = None, *, progress: bool | None = None
    ) -> Any:
        """Run the registered analysis `name` (what every analysis method calls).

        Example:
            >>> import postlens as pl
            >>> fam = pl.load("organism:base", rl="organism:rl")
            >>> list(fam.run("weights").summary().children)
            ['rl']
        """
        analysis = registry.analysis(name)
        if config is None and isinstance(inputs, analysis.config_class):
            raise ConfigError(
                f"fam.{name}(...) got its config as the inputs: pass config={type(inputs).__name__}"
                "(...) (the first argument is what the analysis reads)"
            )
        cfg = analysis.config_for(config)
        return analysis.runner(self, inputs, cfg, show_progress(progress))

    def __getattr__(self, name: str) -> Any:
        # Analyses registered after import (`registry.register`, entry points) are methods too.
        if name.startswith("_") or name not in {a.name for a in registry.analyses()}:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return _method(registry.analysis(name)).__get__(self, Family)

    def report(
        self, config: ReportConfig | None = None, on_section: Callable[..., None] | None = None
    ) -> Report:
        """Run the report's sections on this family (`postlens.reporting`); returns a `Report`."""
        from postlens.reporting import ReportConfig, run_report

        cfg = config or ReportConfig()
        return run_report(self, cfg, on_section)


def _method(analysis: registry.Analysis) -> Callable[..., Any]:
    name = analysis.name

    def method(
        self: Family, inputs: Any = None, config: Any = None, *, progress: bool | None = None
    ) -> Any:
        return self.run(name, inputs, config, progress=progress)

    config, result = analysis.config.rpartition(":")[2], analysis.result.rpartition(":")[2]
    method.__name__ = method.__qualname__ = name
    method.__doc__ = (
        f"{analysis.question}\n\n"
        f"Args:\n    inputs: {analysis.inputs or 'none: leave it None.'}\n"
        f"    config: a `{config}` (default: its defaults).\n"
        "    progress: a progress bar (default: on a terminal only).\n\n"
        f"Returns:\n    a `{result}`."
    )
    return method


def _add_analysis_methods() -> None:
    """One method per registered analysis (`postlens.registry`), with its declared help."""
    for analysis in registry.analyses():
        if hasattr(Family, analysis.name):
            raise ConfigError(f"analysis {analysis.name!r} would shadow Family.{analysis.name}")
        setattr(Family, analysis.name, _method(analysis))


_add_analysis_methods()
