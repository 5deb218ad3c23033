"""A computed report: its sections' results and provenance; JSON out and back; HTML.

The JSON of a report (``postlens report --json``, and the ``#postlens-data`` element embedded
in every HTML report) is a valid results file: ``postlens render RESULTS.json`` and
`postlens.reporting.report` rebuild the page from it without loading a model.

Example:
    >>> rep = Report({"base": "b", "post": "p"}, {"settings": {}})
    >>> Report.from_json(rep.to_json()).models
    {'base': 'b', 'post': 'p'}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postlens.results.protocol import Result


@dataclass
class SectionResult:
    """One section's outcome.

    Attributes:
        name: section key, e.g. ``"forks"``.
        seconds: wall time.
        result: the computed result, or ``None`` if it failed.
        error: the error message (and traceback tail) when it failed.
    """

    name: str
    seconds: float
    result: Any = None
    error: str | None = None

    def __post_init__(self) -> None:
        # Kept as its JSON keeps it: a page rendered live and one re-rendered from the JSON
        # must round the time the same way (0.00496 s shows as 0.0 both ways, not 0.0 / 0.01).
        self.seconds = round(self.seconds, 3)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "seconds": self.seconds}
        if self.ok:
            body["data"] = self.result.to_json()
        else:
            body["error"] = self.error
        return body

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SectionResult:
        result = Result.from_json(data["data"]) if "data" in data else None
        return cls(data["name"], float(data.get("seconds", 0.0)), result, data.get("error"))


@dataclass(frozen=True)
class ReportSummary:
    """What ran and what failed.

    Attributes:
        sections: the sections run, in order.
        failed: those that failed.
        seconds: total compute time.
        interrupted: the run was stopped before every section ran.
    """

    sections: list[str]
    failed: list[str]
    seconds: float
    interrupted: bool


@dataclass
class Report(Result[ReportSummary], kind="report"):
    """A report: the models (role → spec), provenance, and each section's result.

    Attributes:
        models: ``{"base": spec, child: spec, ...}``.
        provenance: file hashes, versions, settings, date.
        sections: the sections' outcomes, in order.
        interrupted: whether the run was stopped (Ctrl-C) before every section ran.
        skipped: default sections left out because these inputs cannot feed them: name → why
            (and how to give what they need).
    """

    models: dict[str, str]
    provenance: dict[str, Any]
    sections: list[SectionResult] = field(default_factory=list)
    interrupted: bool = False
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [s.name for s in self.sections if not s.ok]

    @property
    def children(self) -> list[str]:
        return [k for k in self.models if k != "base"]

    def get(self, name: str) -> Any:
        """The result of section `name`, or ``None`` when it did not run or failed."""
        return next((s.result for s in self.sections if s.name == name and s.ok), None)

    def summary(self) -> ReportSummary:
        return ReportSummary(
            [s.name for s in self.sections],
            self.failed,
            sum(s.seconds for s in self.sections),
            self.interrupted,
        )

    def to_frame(self) -> Any:
        """One row per section: name, seconds, ok, error."""
        import pandas as pd

        return pd.DataFrame(
            [
                {"section": s.name, "seconds": s.seconds, "ok": s.ok, "error": s.error}
                for s in self.sections
            ]
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "models": self.models,
            "provenance": self.provenance,
            "sections": [s.to_json() for s in self.sections],
            "failed_sections": self.failed,
            "interrupted": self.interrupted,
            "skipped_sections": self.skipped,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Report:
        sections = [SectionResult.from_json(s) for s in data["sections"]]
        return cls(
            dict(data["models"]),
            dict(data["provenance"]),
            sections,
            bool(data.get("interrupted")),
            dict(data.get("skipped_sections") or {}),
        )

    def html(self, title: str | None = None) -> str:
        """The complete, self-contained HTML page."""
        from postlens.reporting.page import render_page

        return render_page(self, title)

    def save(self, path: str | Path, title: str | None = None) -> Path:
        """Write the HTML page atomically (readable by others, as the umask allows)."""
        from postlens.io import write_text_atomic

        return write_text_atomic(path, self.html(title))

    def _repr_html_(self) -> str:
        from postlens.reporting.page import summary_cards

        return summary_cards(self)
