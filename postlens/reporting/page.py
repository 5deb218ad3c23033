"""The HTML page of a report: header, summary in words and cards, sections, provenance, data.

Rendering only: every number comes from the report's results. Each section renders itself
(`postlens.reporting.sections`); a failed section is shown with its error.

Example:
    >>> from postlens.reporting import Report
    >>> html = render_page(Report({"base": "b", "post": "<p>"}, {"settings": {}}))
    >>> "&lt;p&gt;" in html and "<p>" not in html.split("<body>")[1].split("postlens report")[0]
    True
"""

from __future__ import annotations

from typing import Any

from postlens.reporting.sections import by_name
from postlens.viz.html import esc, json_script, page, table


def _section_html(result: Any) -> str:
    section = by_name().get(result.name)
    title = section.title if section else result.name
    timing = f"<span class='muted'> · {result.seconds:.1f} s</span>"
    if not result.ok or section is None:
        error = result.error or f"unknown section {result.name!r}"
        return (
            f"<section class='failed' id='sec-{esc(result.name)}'><h2>{esc(title)} — failed"
            f"{timing}</h2><pre>{esc(error)}</pre></section>"
        )
    body = section.render(result.result)
    return f"<section id='sec-{esc(result.name)}'><h2>{esc(title)}{timing}</h2>{body}</section>"


def sentences(report: Any) -> list[str]:
    """One or more sentences per successful section, in report order (a sentence that cannot be
    written from a section's result is left out rather than guessed)."""
    out: list[str] = []
    known = by_name()
    for s in report.sections:
        if s.ok and s.name in known:
            try:
                out += known[s.name].sentences(s.result)
            except (KeyError, AttributeError, TypeError, ValueError, StopIteration):
                continue
    return out


def summary_cards(report: Any) -> str:
    """What changed: the sentences, then a few numbers per child."""
    rows, known = [], by_name()
    for child in report.children:
        cards: list[tuple[str, str]] = []
        for s in report.sections:
            if s.ok and s.name in known:
                try:
                    cards += known[s.name].cards(s.result, child)
                except (KeyError, AttributeError, TypeError, ValueError):
                    continue
        html = "".join(
            f"<div class='card'><div class='v'>{esc(v)}</div><div class='k'>{esc(k)}</div></div>"
            for k, v in cards
        )
        rows.append(f"<h2>{esc(child)}</h2><div class='cards'>{html}</div>")
    words = "".join(f"<li>{esc(t)}</li>" for t in sentences(report))
    words = f"<ul class='verdict'>{words}</ul>" if words else ""
    return f"<section id='summary'><h2>Summary: what changed</h2>{words}{''.join(rows)}</section>"


def _provenance_html(report: Any) -> str:
    prov = report.provenance
    models = [{"role": "base", **_model_row(prov.get("base"), report.models["base"])}] + [
        {"role": k, **_model_row(prov.get("children", {}).get(k), v)}
        for k, v in report.models.items()
        if k != "base"
    ]
    timings = [
        {"section": s.name, "seconds": round(s.seconds, 2), "ok": s.ok} for s in report.sections
    ]
    settings = [{"setting": k, "value": v} for k, v in prov.get("settings", {}).items()]
    tokens = _tokenizer_rows(prov.get("tokenizers") or {})
    versions = " · ".join(
        f"{label} {esc(prov[key])}"
        for label, key in (
            ("postlens", "postlens_version"),
            ("torch", "torch_version"),
            ("transformers", "transformers_version"),
            ("Python", "python"),
            ("", "date"),
        )  # fmt: skip
        if key in prov
    )
    return (
        "<section id='sec-provenance'><h2>Provenance</h2>"
        f"<p class='muted'>{versions}</p>{table(models)}{tokens}{table(settings)}{table(timings)}"
        "<p class='muted'>Every section's numbers are embedded in this file as JSON "
        "(<code>#postlens-data</code>): <code>postlens render</code> rebuilds the page from "
        "them.</p></section>"
    )


def _tokenizer_rows(tokenizers: dict[str, Any]) -> str:
    """Each child's tokenizer against the base's: chat template used, shared ids, differences."""
    if not tokenizers:
        return ""  # a report from before tokenizers were recorded
    rows = [
        {
            "child": child,
            "chat template": info.get("chat_template_used", "none"),
            "shared ids": info.get("n_shared", "–"),
            "tokenizer differences": "; ".join(info.get("differences") or []) or "none",
        }
        for child, info in tokenizers.items()
    ]
    return table(rows)


def _model_row(info: dict[str, Any] | None, spec: str) -> dict[str, Any]:
    info = info or {"spec": spec, "location": "–"}
    files = info.get("files") or {}
    digest = "; ".join(f"{name} sha256:{h[:16]}…" for name, h in files.items()) or "–"
    return {"spec": info["spec"], "location": info["location"], "weights": digest}


def render_page(report: Any, title: str | None = None) -> str:
    """The complete report page."""
    base = report.models["base"]
    children = ", ".join(f"{k} = {v}" for k, v in report.models.items() if k != "base")
    title = title or f"postlens report: {base} → {children}"
    notes = ""
    if report.failed:
        notes += f"<p class='failed'>Failed sections: {esc(', '.join(report.failed))}</p>"
    if report.interrupted:
        notes += "<p class='failed'>Interrupted: only the sections shown were computed.</p>"
    if report.skipped:
        items = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in report.skipped.items())
        notes += f"<p class='muted'>Not run on these inputs:</p><ul class='muted'>{items}</ul>"
    header = (
        f"<h1>{esc(title)}</h1><p class='muted'>What did post-training change inside the model? "
        f"Base <b>{esc(base)}</b>; post-trained: <b>{esc(children)}</b>.</p>{notes}"
    )
    parts = [header, summary_cards(report), *(_section_html(s) for s in report.sections)]
    parts += [_provenance_html(report), json_script("postlens-data", report.to_json())]
    return page(title, parts)
