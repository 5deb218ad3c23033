"""The analysis registry: every analysis is declared once, and everything else reads it.

An analysis is a package (``postlens.diffs.forks``, ``postlens.probes.confidence``, ...) whose
``__init__`` declares an `Analysis` (or a tuple ``ANALYSES`` of them): its name, its config and
result classes, the function that runs it on a family, its report section and its command.
From that one declaration follow

* the family method ``fam.<name>(inputs=None, config=None, *, progress=None)``,
* `postlens.load_result` knowing the result's kind,
* the report section (``--sections <name>``),
* the ``postlens <command>`` subcommand.

Adding an analysis is its package plus one registration: a line in `PACKAGES` inside postlens,
`register` at run time, or, for a package of your own, an entry point in the
``postlens.analyses`` group naming it (``[project.entry-points."postlens.analyses"]
mine = "my_package.my_analysis"``). Its report section and its command are optional: without
them it gets a generic section (its figure and summary, off by default) and a generic command
(options from its config, its summary printed). Declarations name their classes and functions
as ``"module:attribute"`` strings, so that reading the registry imports no torch, and
``import postlens`` stays fast.

Example:
    >>> [a.name for a in analyses()][:3]
    ['weights', 'forks', 'activations']
    >>> analysis("forks").config_class.__name__
    'ForkConfig'
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from postlens.errors import ConfigError

#: Packages that declare analyses, in report order. Registering an analysis is one line here.
PACKAGES = (
    "postlens.diffs.weights",
    "postlens.diffs.forks",
    "postlens.diffs.activations",
    "postlens.diffs.passk",
    "postlens.probes.confidence",
    "postlens.diffs.personas",
    "postlens.diffs.crosscoder",
    "postlens.diffs.causal",
    "postlens.diffs.adl",
)


def resolve(path: str) -> Any:
    """The object named by ``"package.module:attribute"`` (imported on first use).

    Example:
        >>> resolve("postlens.errors:ConfigError").__name__
        'ConfigError'
    """
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Analysis:
    """One analysis, declared once.

    Attributes:
        name: the family method's name and the result's analysis name (``"forks"``).
        question: what it answers, one line (the method's and the command's help).
        config: ``"module:Class"`` of its config dataclass.
        result: ``"module:Class"`` of the result one run returns (a `ByChild` for the
            per-child analyses: then `child_result` names the per-child class).
        run: ``"module:function"``, called as ``run(family, inputs, config, progress)``.
        inputs: what the method's `inputs` argument may be, and its default.
        child_result: ``"module:Class"`` of each child's result, when `result` is a `ByChild`.
        section: ``"module:SECTION"`` of its report section, or ``None``.
        command: the subcommand's name (default: `name` with ``-`` for ``_``), or ``None``.
        cli: ``"module"`` that registers the subcommand on the typer app.
        kinds: further ``"module:Class"`` result classes its JSON may hold.
    """

    name: str
    question: str
    config: str
    result: str
    run: str
    inputs: str = ""
    child_result: str | None = None
    section: str | None = None
    command: str | None = None
    cli: str | None = None
    kinds: tuple[str, ...] = ()

    @property
    def config_class(self) -> type:
        return resolve(self.config)

    @property
    def result_class(self) -> type:
        return resolve(self.result)

    @property
    def runner(self) -> Callable[..., Any]:
        return resolve(self.run)

    @property
    def result_classes(self) -> list[type]:
        """Every result class this analysis defines (what `load_result` must know)."""
        paths = (self.result, self.child_result, *self.kinds)
        return [resolve(p) for p in paths if p is not None]

    @property
    def command_name(self) -> str:
        return self.command or self.name.replace("_", "-")

    def config_for(self, config: Any) -> Any:
        """`config`, or the default config; anything else is a `ConfigError` naming both."""
        cls = self.config_class
        if config is None:
            return cls()
        if not isinstance(config, cls):
            raise ConfigError(f"{self.name} takes a {cls.__name__}, got {type(config).__name__}")
        return config


#: Packages registered at run time (`register`), after `PACKAGES` and the entry points.
_REGISTERED: list[str] = []
ENTRY_POINTS = "postlens.analyses"


def register(package: str) -> None:
    """Add the analyses that `package` declares (its ``ANALYSIS`` or ``ANALYSES``).

    Raises:
        ConfigError: the package declares a name already taken (nothing is registered).
    """
    if package in _REGISTERED:
        return
    _REGISTERED.append(package)
    _declared.cache_clear()
    try:
        _declared()
    except ConfigError:
        unregister(package)
        raise


def unregister(package: str) -> None:
    """Take back a `register` (for tests and notebooks that plant an analysis)."""
    if package in _REGISTERED:
        _REGISTERED.remove(package)
        _declared.cache_clear()


def _packages() -> list[str]:
    from importlib.metadata import entry_points

    plugins = [ep.value for ep in entry_points(group=ENTRY_POINTS)]
    return [*PACKAGES, *plugins, *_REGISTERED]


@functools.cache
def _declared() -> dict[str, Analysis]:
    out: dict[str, Analysis] = {}
    for package in _packages():
        module = importlib.import_module(package)
        found = getattr(module, "ANALYSES", None) or (module.ANALYSIS,)
        for a in found:
            if a.name in out:
                raise ConfigError(f"analysis {a.name!r} is declared twice ({package})")
            out[a.name] = a
    return out


def analyses() -> list[Analysis]:
    """Every registered analysis, in report order."""
    return list(_declared().values())


def analysis(name: str) -> Analysis:
    """The analysis called `name`.

    Raises:
        ConfigError: no such analysis (the message lists them).
    """
    found = _declared().get(name)
    if found is None:
        raise ConfigError(f"unknown analysis {name!r}; choose from {', '.join(_declared())}")
    return found


def register_result_kinds() -> None:
    """Import every registered result class, so `Result.from_json` knows every kind."""
    for a in analyses():
        a.result_classes  # noqa: B018  (importing the classes registers their kinds)
