"""Building blocks of self-contained HTML: escaping, plotly without a CDN, tables, the page shell."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

_CONTROL = {i: f"\\x{i:02x}" for i in [*range(0, 9), 11, 12, *range(14, 32), 127]}


def esc(text: Any) -> str:
    """Escape model text for HTML: markup, quotes, and control characters shown as ``\\xNN``.

    Example:
        >>> esc('<script>"x"</script>\\x00')
        '&lt;script&gt;&quot;x&quot;&lt;/script&gt;\\\\x00'
    """
    return html.escape(str(text).translate(_CONTROL), quote=True)


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle shipped inside the plotly package (no network needed)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def figure_div(fig: Any, div_id: str | None = None) -> str:
    """A plotly figure as a ``<div>`` that uses the page's single inlined plotly.js."""
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )


def table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, digits: int = 4
) -> str:
    """A compact HTML table of dict rows; every cell is escaped."""
    if not rows:
        return "<p class='muted'>(empty)</p>"
    columns = list(columns or rows[0].keys())
    # <wbr> after each underscore lets long snake_case headers wrap instead of widening the page.
    head = "".join(f"<th>{esc(c).replace('_', '_<wbr>')}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(_fmt(r.get(c), digits))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table class='pl-table'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: Any, digits: int) -> str:
    if isinstance(value, float) and value != value:  # NaN: a figure that does not apply
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if value is None:
        return "–"
    return str(value)


def json_script(element_id: str, data: Any) -> str:
    """Embed data as JSON in a ``<script type="application/json">`` that cannot break out."""
    # Escaping every <, > and & keeps the data inert inside the script element, whatever it holds.
    text = json.dumps(data, default=_jsonable)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{esc(element_id)}">{text}</script>'


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px} h2{font-size:20px;margin:0 0 8px}
section{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:16px 20px;margin:16px 0}
.muted{color:#6a737d}.failed{border-color:#d73a49;background:#fff5f5}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.card{flex:1 1 170px;background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:12px}
.card .v{font-size:24px;font-weight:600}.card .k{font-size:12px;color:#6a737d}
.verdict{line-height:1.5;margin:8px 0 4px 0}.verdict li{margin:4px 0}
.pl-table{border-collapse:collapse;font-size:13px;margin:8px 0;display:block;max-width:100%;overflow-x:auto}
.pl-table td,.pl-table th{border:1px solid #e1e4e8;padding:3px 8px;text-align:right}
.pl-table td{max-width:28em;overflow-wrap:anywhere}
.pl-table th{background:#f1f3f5}
pre{white-space:pre-wrap;background:#f6f8fa;padding:8px;border-radius:6px;font-size:12px}
details summary{cursor:pointer}
"""


def page(title: str, body_parts: Iterable[str], with_plotly: bool = True) -> str:
    """A complete, self-contained HTML page (plotly.js inlined once)."""
    script = f"<script>{plotly_js()}</script>" if with_plotly else ""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width,initial-scale=1'><title>{esc(title)}</title>"
        f"<style>{STYLE}</style>{script}</head><body><main>"
        + "".join(body_parts)
        + "</main></body></html>"
    )
