"""The self-contained HTML report of a base and its children, computed or re-rendered.

``fam.report(config)`` computes the sections (`postlens.reporting.sections`) into a `Report`;
``report.save("report.html")`` writes the page; `report` (also ``pl.report``) rebuilds a
`Report` from results already computed — a results file, a report's JSON, or result objects —
so a view can be changed without recomputing anything.

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", sft="organism:sft", rl="organism:rl")
    >>> rep = pl.report({"weights": fam.weights(progress=False)}, models={"base": "organism:base", **fam.specs})
    >>> "Weight shifts" in rep.html()
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from postlens.errors import InputFileError
from postlens.reporting.config import ReportConfig
from postlens.reporting.document import Report, SectionResult
from postlens.reporting.run import run_report

__all__ = ["Report", "ReportConfig", "SectionResult", "report", "run_report"]


def report(
    results: str | Path | Report | Mapping[str, Any], models: Mapping[str, str] | None = None
) -> Report:
    """A `Report` from results already computed, ready to `save` or show.

    Args:
        results: a JSON file written by ``postlens report --json``, a report's HTML page
            (its embedded ``#postlens-data``), a `Report`, or section name → result object (e.g.
            ``{"forks": fam.forks(...), "weights": fam.weights()}``).
        models: role → spec, when `results` are result objects (default: read from them).

    Raises:
        InputFileError: the file is not a report's results, or a section name is unknown.
    """
    from postlens.reporting.sections import by_name

    if isinstance(results, Report):
        return results
    if isinstance(results, str | Path):
        return _read(Path(results))
    known = by_name()
    unknown = [k for k in results if k not in known]
    if unknown:
        raise InputFileError(
            f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(known)}"
        )
    sections = [SectionResult(k, 0.0, v) for k, v in results.items()]
    return Report(dict(models or _models_of(results.values())), {"settings": {}}, sections)


def _read(path: Path) -> Report:
    from postlens.registry import register_result_kinds
    from postlens.results.family import read_json

    data = _embedded_json(path) if path.suffix in (".html", ".htm") else read_json(path)
    if not isinstance(data, dict) or data.get("kind") != Report.kind:
        raise InputFileError(f"{path}: not a report's results (written by postlens report --json)")
    register_result_kinds()
    try:
        return Report.from_json(data)
    except (KeyError, TypeError, ValueError) as err:
        raise InputFileError(f"{path}: malformed report results ({err})") from None


def _embedded_json(path: Path) -> Any:
    """The results embedded in a report page (its ``#postlens-data`` element)."""
    import json
    import re

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputFileError(f"{path}: cannot read the report ({err})") from None
    found = re.search(
        r'<script type="application/json" id="postlens-data">(.*?)</script>', text, re.S
    )
    if found is None:
        raise InputFileError(f"{path}: no postlens data in this page (not a postlens report?)")
    return json.loads(found[1])  # the embedded JSON escapes <, > and & as \u sequences


def _models_of(results: Any) -> dict[str, str]:
    """Role → spec, read from the results themselves (each child's result names its models)."""
    models: dict[str, str] = {}
    for value in results:
        per_child = getattr(value, "children", None) or getattr(value, "results", None)
        if not isinstance(per_child, Mapping):
            continue
        for child, r in per_child.items():
            models.setdefault("base", getattr(r, "base", "base"))
            models.setdefault(child, str(getattr(r, "post", child)))
    return models or {"base": "base", "post": "post"}
