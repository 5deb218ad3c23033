"""The self-contained HTML report of a checkpoint pair (or a base and its SFT and RL children).

Rendering only: the numbers come from `postlens.reporting.run_report`. Each section renders
itself through `postlens.viz.sections`; a failed section is shown with its error.
"""

from __future__ import annotations

from typing import Any

from postlens.reporting import ReportData, SectionResult
from postlens.viz.html import esc, json_script, page, table
from postlens.viz.sections import RENDERERS, TITLES, summary_cards


def section_json(result: SectionResult) -> dict[str, Any]:
    """The JSON of one section: its numbers, or its error."""
    body: dict[str, Any] = {"name": result.name, "seconds": round(result.seconds, 3)}
    if result.ok:
        body["data"] = _to_json(result.result)
    else:
        body["error"] = result.error
    return body


def _to_json(value: Any) -> Any:
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    return value


def report_json(data: ReportData) -> dict[str, Any]:
    """Provenance and every section's numbers, as written by ``postlens report --json``."""
    return {
        "provenance": data.provenance,
        "sections": [section_json(s) for s in data.sections],
        "failed_sections": data.failed,
    }


def _section_html(result: SectionResult) -> str:
    title = TITLES.get(result.name, result.name)
    timing = f"<span class='muted'> · {result.seconds:.1f} s</span>"
    if not result.ok:
        return (
            f"<section class='failed' id='sec-{esc(result.name)}'><h2>{esc(title)} — failed"
            f"{timing}</h2><pre>{esc(result.error)}</pre></section>"
        )
    body = RENDERERS[result.name](result.result)
    return f"<section id='sec-{esc(result.name)}'><h2>{esc(title)}{timing}</h2>{body}</section>"


def _provenance_html(data: ReportData) -> str:
    prov = data.provenance
    models = [{"role": "base", **_model_row(prov["base"])}] + [
        {"role": k, **_model_row(v)} for k, v in prov["children"].items()
    ]
    timings = [
        {"section": s.name, "seconds": round(s.seconds, 2), "ok": s.ok} for s in data.sections
    ]
    settings = [{"setting": k, "value": v} for k, v in prov["settings"].items()]
    versions = (
        f"postlens {esc(prov['postlens_version'])} · torch {esc(prov['torch_version'])} · "
        f"transformers {esc(prov['transformers_version'])} · Python {esc(prov['python'])} · "
        f"{esc(prov['date'])}"
    )
    return (
        "<section id='sec-provenance'><h2>Provenance</h2>"
        f"<p class='muted'>{versions}</p>{table(models)}{table(settings)}{table(timings)}"
        "<p class='muted'>Every section's numbers are embedded in this file as JSON "
        "(<code>#postlens-data</code>).</p></section>"
    )


def _model_row(info: dict[str, Any]) -> dict[str, Any]:
    files = info.get("files") or {}
    digest = "; ".join(f"{name} sha256:{h[:16]}…" for name, h in files.items()) or "–"
    return {"spec": info["spec"], "location": info["location"], "weights": digest}


def render_report(data: ReportData, title: str | None = None) -> str:
    """The complete report page.

    Example:
        >>> html = render_report(run_report(cfg))  # doctest: +SKIP
    """
    children = ", ".join(f"{k} = {v}" for k, v in data.config.children.items())
    title = title or f"postlens report: {data.config.base} → {children}"
    failed = (
        f"<p class='failed'>Failed sections: {esc(', '.join(data.failed))}</p>"
        if data.failed
        else ""
    )
    header = (
        f"<h1>{esc(title)}</h1><p class='muted'>What did post-training change inside the model? "
        f"Base <b>{esc(data.config.base)}</b>; post-trained: <b>{esc(children)}</b>.</p>{failed}"
    )
    parts = [header, summary_cards(data), *(_section_html(s) for s in data.sections)]
    parts += [_provenance_html(data), json_script("postlens-data", report_json(data))]
    return page(title, parts)
