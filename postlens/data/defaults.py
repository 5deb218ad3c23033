"""A family's default inputs: what its analyses read when the user gives nothing.

Analyses need more than models: verifiable problems (pass@k, steering, substitution), a
classifier of completions into strategies or styles, generic text (the Activation Difference
Lens), a training corpus (crosscoders), persona-tagged sets (personas), reasoning traces
(confidence). Nothing in the analyses knows where these come from: `pl.load` resolves one
`InputProvider` for the family, and the analyses ask it. It chains, first answer wins:

1. what ``pl.load(..., inputs=Inputs(...))`` gives;
2. a ``postlens-inputs.json`` file in the base model's folder (`file_inputs`): a user's own
   checkpoint folder declares its defaults the way the shipped organism does;
3. the provider registered for the base spec's scheme (`register_provider`): the shipped
   organism registers its held-out problems, style classifier, texts, persona sets and traces
   for ``organism:``.

``postlens-inputs.json`` holds paths relative to itself, every key optional::

    {"problems": "problems.jsonl",          # records with 'prompt' and 'answer'
     "verifier": "last-number",             # how answers are checked (VERIFIER_MODES)
     "texts": "generic.txt",                # one generic text a line
     "corpus": "corpus.txt",                # one training text a line
     "personas": "personas.jsonl",          # 'persona', 'prompt' [, 'completion'] lines
     "persona_prompts": "prompts.txt",      # untagged prompts for the persona analysis
     "classifier": {"careful": "step \\\\d", "hasty": "^answer"}}   # label -> regex, in order

Example:
    >>> Inputs(problems=["Q: 1+1=?"]).provider().problems(5) is None  # no answers
    True
    >>> p = Inputs(problems=[{"prompt": "Q: 2+2=?", "answer": 4}]).provider().problems(5)
    >>> p[0].prompt, p[0].verify("so 4")
    ('Q: 2+2=?', True)
    >>> Inputs(classifier={"yes": "^y"}).provider().classifier()("yes!")
    'yes'
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postlens.data.verifiers import VERIFIER_MODES, Problem
from postlens.errors import ConfigError, InputFileError

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer

Classifier = Callable[[str], str]
#: Default problems taken when an analysis sets no limit.
DEFAULT_PROBLEMS = 64
#: The file a checkpoint folder declares its default inputs in.
INPUTS_FILE = "postlens-inputs.json"
_FILE_KEYS = (
    "problems",
    "verifier",
    "texts",
    "corpus",
    "personas",
    "persona_prompts",
    "classifier",
)


@dataclass(frozen=True)
class PersonaFiles:
    """Persona inputs as files, read by the persona analysis (`read_persona_file` format)."""

    personas: Path
    prompts: Path
    corpus: Path | None = None


class InputProvider:
    """What a family supplies by default; every method answers ``None`` when it has nothing.

    Subclass it for a model family of your own and register it for a spec scheme
    (`register_provider`), or give values directly with `Inputs`.
    """

    #: Where the defaults come from, for messages and provenance.
    source = "nothing"

    def provides(self, name: str) -> bool:
        """Whether this provider can give `name` (``"problems"``, ``"traces"``, ...), cheaply.

        Example:
            >>> InputProvider().provides("problems")
            False
        """
        return getattr(type(self), name) is not getattr(InputProvider, name)

    def problems(self, n: int, offset: int = 0) -> list[Problem] | None:
        """`n` verifiable problems (`offset` asks for another held-out set where there is one)."""
        return None

    def classifier(self) -> Classifier | None:
        """A function labelling a completion with its strategy or style."""
        return None

    def texts(self, n: int, seed: int = 0) -> list[str] | None:
        """`n` generic texts unrelated to any fine-tune (the Activation Difference Lens)."""
        return None

    def corpus(self, n: int, seed: int = 0) -> list[str] | None:
        """`n` texts like the model's training data (crosscoders, SAEs)."""
        return None

    def personas(self, n_per_persona: int, n_prompts: int, seed: int = 0) -> Any:
        """Persona-tagged sets and untagged prompts (a `PersonaInputs` or `PersonaFiles`)."""
        return None

    def traces(self, models: Mapping[str, Any], tokenizer: Tokenizer, config: Any) -> Any:
        """Model name → reasoning `Trace` list for the confidence analysis."""
        return None

    def sae(self) -> str | None:
        """A sparse autoencoder shipped for the base (a folder), for the persona analysis."""
        return None


@dataclass(frozen=True)
class Inputs:
    """Default inputs given as values (``pl.load(..., inputs=Inputs(...))``); unset ones fall through.

    Attributes:
        problems: records with an ``answer`` (a JSONL path, dicts, `PromptRecord`s, or
            ``(prompt, answer)`` pairs), or `Problem`s with their own verifier.
        verifier: how answers are checked (`postlens.data.verifiers.VERIFIER_MODES`).
        classifier: completion → label, or label → regex (the first that matches; ``other``).
        texts: generic texts, or a text file (one a line).
        corpus: training-like texts, or a text file.
        personas: a `PersonaInputs`, or a `PersonaFiles`.
        traces: model name → `Trace` list.
        sae: a sparse autoencoder folder.
        source: where these come from (for messages).
    """

    problems: Any = None
    verifier: str = "last-number"
    classifier: Classifier | Mapping[str, str] | None = None
    texts: Sequence[str] | str | Path | None = None
    corpus: Sequence[str] | str | Path | None = None
    personas: Any = None
    traces: Mapping[str, Any] | None = None
    sae: str | None = None
    source: str = "given inputs"

    def __post_init__(self) -> None:
        if self.verifier not in VERIFIER_MODES:
            raise ConfigError(
                f"unknown verifier {self.verifier!r}; choose one of {', '.join(VERIFIER_MODES)}"
            )
        if isinstance(self.classifier, Mapping):
            RegexClassifier(dict(self.classifier))  # a bad regex is refused here, not mid-run

    def provider(self) -> InputProvider:
        """These values as an `InputProvider`."""
        return Given(self)


class Given(InputProvider):
    """The provider of an `Inputs`: each method reads one of its values."""

    def __init__(self, inputs: Inputs) -> None:
        self.inputs = inputs
        self.source = inputs.source

    def provides(self, name: str) -> bool:
        if name == "problems":
            from postlens.data.inputs import has_answers

            return self.inputs.problems is not None and has_answers(self.inputs.problems)
        return getattr(self.inputs, name) is not None

    def problems(self, n: int, offset: int = 0) -> list[Problem] | None:
        from postlens.data.inputs import has_answers, verifiable_problems

        source = self.inputs.problems
        if source is None:
            return None
        if isinstance(source, Sequence) and all(isinstance(x, Problem) for x in source):
            return list(source)[:n]
        # Records without answers are prompts, not problems: nothing verifiable to give.
        return verifiable_problems(source, n, self.inputs.verifier) if has_answers(source) else None

    def classifier(self) -> Classifier | None:
        c = self.inputs.classifier
        return c if c is None or callable(c) else RegexClassifier(dict(c))

    def texts(self, n: int, seed: int = 0) -> list[str] | None:
        return None if self.inputs.texts is None else _lines(self.inputs.texts)[:n]

    def corpus(self, n: int, seed: int = 0) -> list[str] | None:
        return None if self.inputs.corpus is None else _lines(self.inputs.corpus)[:n]

    def personas(self, n_per_persona: int, n_prompts: int, seed: int = 0) -> Any:
        return self.inputs.personas

    def traces(self, models: Mapping[str, Any], tokenizer: Tokenizer, config: Any) -> Any:
        return self.inputs.traces

    def sae(self) -> str | None:
        return self.inputs.sae


@dataclass(frozen=True)
class RegexClassifier:
    """Label a completion by the first regex that matches it (``other`` when none does).

    Example:
        >>> RegexClassifier({"careful": r"step \\d", "hasty": r"^answer"})("answer 4")
        'hasty'
    """

    patterns: dict[str, str]

    def __post_init__(self) -> None:
        for label, pattern in self.patterns.items():
            try:
                re.compile(pattern)
            except re.error as err:
                raise ConfigError(f"classifier label {label!r}: bad regex ({err})") from None

    def __call__(self, completion: str) -> str:
        for label, pattern in self.patterns.items():
            if re.search(pattern, completion):
                return label
        return "other"


@dataclass(frozen=True)
class Chain(InputProvider):
    """Several providers asked in order; the first that answers wins."""

    providers: tuple[InputProvider, ...]

    @property
    def source(self) -> str:  # type: ignore[override]
        return " > ".join(p.source for p in self.providers) or "nothing"

    def provides(self, name: str) -> bool:
        return any(p.provides(name) for p in self.providers)

    def _first(self, method: str, *args: Any) -> Any:
        for p in self.providers:
            value = getattr(p, method)(*args)
            if value is not None:
                return value
        return None

    def problems(self, n: int, offset: int = 0) -> list[Problem] | None:
        return self._first("problems", n, offset)

    def classifier(self) -> Classifier | None:
        return self._first("classifier")

    def texts(self, n: int, seed: int = 0) -> list[str] | None:
        return self._first("texts", n, seed)

    def corpus(self, n: int, seed: int = 0) -> list[str] | None:
        return self._first("corpus", n, seed)

    def personas(self, n_per_persona: int, n_prompts: int, seed: int = 0) -> Any:
        return self._first("personas", n_per_persona, n_prompts, seed)

    def traces(self, models: Mapping[str, Any], tokenizer: Tokenizer, config: Any) -> Any:
        return self._first("traces", models, tokenizer, config)

    def sae(self) -> str | None:
        return self._first("sae")


#: Spec scheme → ``"module:factory"`` of its provider (the factory takes the spec string).
_PROVIDERS: dict[str, str] = {"organism": "postlens.organism.inputs:organism_inputs"}


def register_provider(scheme: str, factory: str) -> None:
    """Make specs ``<scheme>:...`` default to the provider ``"module:factory"`` builds.

    Example:
        >>> register_provider("toy", "postlens.organism.inputs:OrganismInputs")
        >>> provider_for("toy:base").source
        'the organism'
    """
    _PROVIDERS[scheme] = factory


def provider_for(
    base_spec: str, location: str | Path | None = None, given: Inputs | InputProvider | None = None
) -> InputProvider:
    """The family's provider: `given`, then the base folder's `INPUTS_FILE`, then its scheme's.

    Args:
        base_spec: the base model's spec string.
        location: the base model's folder, if it has one.
        given: what the user passed to ``pl.load(..., inputs=...)``.

    Example:
        >>> provider_for("organism:base").source
        'the organism'
        >>> provider_for("some/folder").problems(3) is None
        True
    """
    if isinstance(given, Inputs):
        given = given.provider()
    chain: list[InputProvider] = [given] if given is not None else []
    if location is not None and (Path(location) / INPUTS_FILE).is_file():
        chain.append(file_inputs(Path(location) / INPUTS_FILE).provider())
    scheme = str(base_spec).split(":", 1)[0] if ":" in str(base_spec) else None
    if scheme in _PROVIDERS:
        module, _, name = _PROVIDERS[scheme].partition(":")
        chain.append(getattr(importlib.import_module(module), name)(base_spec))
    return chain[0] if len(chain) == 1 else Chain(tuple(chain)) if chain else InputProvider()


def file_inputs(path: Path) -> Inputs:
    """The `Inputs` a ``postlens-inputs.json`` file declares (paths relative to the file).

    Raises:
        InputFileError: not JSON, an unknown key, or a file it names that is not there.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputFileError(f"{path}: not a JSON file ({err})") from None
    if not isinstance(data, dict):
        raise InputFileError(f"{path}: expected a JSON object with keys {', '.join(_FILE_KEYS)}")
    unknown = sorted(set(data) - set(_FILE_KEYS))
    if unknown:
        raise InputFileError(
            f"{path}: unknown key(s) {', '.join(unknown)}; expected {', '.join(_FILE_KEYS)}"
        )

    def file(key: str) -> Path | None:
        if data.get(key) is None:
            return None
        found = path.parent / str(data[key])
        if not found.exists():
            raise InputFileError(f"{path}: {key!r} names {found}, which is not there")
        return found

    personas, prompts = file("personas"), file("persona_prompts")
    if (personas is None) != (prompts is None):
        raise InputFileError(f"{path}: 'personas' and 'persona_prompts' go together")
    classifier = data.get("classifier")
    if classifier is not None and not (
        isinstance(classifier, dict) and all(isinstance(v, str) for v in classifier.values())
    ):
        raise InputFileError(f"{path}: 'classifier' must map labels to regular expressions")
    return Inputs(
        problems=file("problems"), verifier=data.get("verifier", "last-number"),
        classifier=classifier, texts=file("texts"), corpus=file("corpus"),
        personas=PersonaFiles(personas, prompts, file("corpus")) if personas and prompts else None,
        source=str(path),
    )  # fmt: skip


def _lines(source: Sequence[str] | str | Path) -> list[str]:
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise InputFileError(f"{path}: file not found")
        return [t for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
    return list(source)
