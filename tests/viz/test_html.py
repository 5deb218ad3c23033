"""HTML building blocks: escaping and inert JSON."""

from __future__ import annotations

import json
import re

from postlens.viz.html import esc, json_script, table
from postlens.viz.tokens import token_view


def test_escape_markup_quotes_and_control_characters():
    assert (
        esc("<script>\"a\" 'b' & </div>")
        == "&lt;script&gt;&quot;a&quot; &#x27;b&#x27; &amp; &lt;/div&gt;"
    )
    assert esc("bell\x07 nul\x00 tab\t") == "bell\\x07 nul\\x00 tab\t"


def test_json_script_cannot_break_out():
    payload = {"t": "</script><script>alert(1)</script><!--"}
    html = json_script("d", payload)
    assert html.count("</script>") == 1 and "<!--" not in html
    body = re.search(r">(.*)</script>", html).group(1)
    assert json.loads(body) == payload


def test_tables_and_token_view_escape_cells():
    assert "&lt;b&gt;" in table([{"x": "<b>"}])
    view = token_view([{"label": "<i>", "prompt": "</div>", "tokens": [
        {"text": "<script>", "kl": 1.0, "entropy_base": 0.5, "fork": True, "top_base": [["<a>", 0.5]], "top_post": [["b", 0.4]]}
    ]}])  # fmt: skip
    assert "<script>" not in view.split("<script type")[0]  # model text never becomes markup
    assert "&lt;script&gt;" in view and "&lt;/div&gt;" in view and "class='tok fork'" in view


def test_a_nan_cell_is_a_dash_not_nan():
    html = table([{"model": "base", "shift_cosine": float("nan"), "change": 0.25}])
    assert "nan" not in html and "<td>–</td>" in html and "<td>0.25</td>" in html
