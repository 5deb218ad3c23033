"""A report section is one object: its name, title, what it needs, how it computes and renders.

Each section lives in its own module of `postlens.reporting.sections` and is listed once, in order,
in `postlens.reporting.sections.sections()`. Computing goes through the family's methods (so a
section computes exactly what a notebook would); rendering reads only the section's result, so
a report can be re-rendered from its JSON (`postlens render`).

Example:
    >>> from postlens.reporting.sections import sections
    >>> [s.name for s in sections()][:3]
    ['weights', 'forks', 'activations']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ReportContext:
    """What every section of one report run shares.

    Attributes:
        family: the loaded `Family`.
        config: the `ReportConfig`.
        cache: values shared between sections (e.g. the sampled sequences), by key.
    """

    family: Any
    config: Any
    cache: dict[str, Any] = field(default_factory=dict)

    def shared(self, key: str, make: Callable[[], Any]) -> Any:
        """The cached value of `key`, made once."""
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]


@dataclass(frozen=True)
class Section:
    """One report section.

    Attributes:
        name: the key used by ``--sections`` and in the report's JSON.
        title: the heading shown.
        compute: context → the section's result (a `postlens.results.protocol.Result`).
        render: result → the section's HTML body.
        sentences: result → what the result says, in plain words, for the summary at the top.
        cards: (result, child) → (label, value) pairs for that child's summary cards.
        unavailable: context → why the section cannot run on these inputs (``None`` if it
            can); a section that cannot run is left out of the default set and reported as
            failed with that reason when asked for by name.
        default: whether the section runs when no ``--sections`` are given.
        cost: a sentence on what the section costs, for the documentation.
    """

    name: str
    title: str
    compute: Callable[[ReportContext], Any]
    render: Callable[[Any], str]
    sentences: Callable[[Any], list[str]] = lambda result: []
    cards: Callable[[Any, str], list[tuple[str, str]]] = lambda result, child: []
    unavailable: Callable[[ReportContext], str | None] = lambda ctx: None
    default: bool = True
    cost: str = ""
