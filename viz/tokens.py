"""Interactive token view: each completion's tokens coloured by a per-token score.

Hovering a token shows both models' top-5 next-token predictions with probabilities. All model
text travels as JSON and is inserted with ``textContent``, so tokens such as ``<script>`` or
``</div>`` render as text.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from postlens.errors import ConfigError
from postlens.viz.html import esc, json_script

_CSS = """
.tv{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:13px;line-height:1.9}
.tv .seq{margin:6px 0;padding:6px;border-bottom:1px dashed #e1e4e8;white-space:pre-wrap}
.tv .lbl{color:#6a737d;font-size:11px;display:block}
.tv .prompt{color:#8a939c}
.tv .tok{border-radius:3px;padding:1px 0;cursor:default}
.tv .fork{outline:2px solid #d73a49;outline-offset:-1px}
.tv-tip{position:fixed;z-index:10;background:#fff;border:1px solid #999;border-radius:6px;
 padding:6px 8px;font:12px ui-monospace,monospace;box-shadow:0 2px 8px rgba(0,0,0,.2);display:none}
.tv-tip table{border-collapse:collapse}.tv-tip td{padding:0 6px}
"""

_JS = """
(function(){
 const data = JSON.parse(document.getElementById('%(data_id)s').textContent);
 const root = document.getElementById('%(root_id)s');
 const tip = document.createElement('div'); tip.className = 'tv-tip tv-tip-%(root_id)s';
 document.body.appendChild(tip);
 function show(text){ return JSON.stringify(text).slice(1, -1); }
 function rows(title, top){
   const t = document.createElement('table');
   const h = t.insertRow(); const c = h.insertCell(); c.colSpan = 2; c.textContent = title;
   c.style.fontWeight = 'bold';
   for (const [tok, p] of top){ const r = t.insertRow();
     r.insertCell().textContent = show(tok); r.insertCell().textContent = p.toFixed(3); }
   return t;
 }
 root.addEventListener('mouseover', function(ev){
   const el = ev.target.closest('.tok'); if (!el) return;
   const d = data[+el.dataset.s].tokens[+el.dataset.t];
   tip.replaceChildren();
   const head = document.createElement('div');
   head.textContent = 'token ' + show(d.text) + '  KL ' + d.kl.toFixed(3) + '  H_base ' +
     d.entropy_base.toFixed(3) + (d.fork ? '  (fork)' : '');
   tip.appendChild(head);
   tip.appendChild(rows('base top-5', d.top_base)); tip.appendChild(rows('post top-5', d.top_post));
   tip.style.display = 'block';
   tip.style.left = Math.min(ev.clientX + 12, window.innerWidth - 260) + 'px';
   tip.style.top = (ev.clientY + 14) + 'px';
 });
 root.addEventListener('mouseout', function(ev){ if (ev.target.closest('.tok')) tip.style.display = 'none'; });
})();
"""


def _colour(value: float, vmax: float) -> str:
    # White → red, saturating at vmax; a log-ish scale would hide the few large forks.
    a = 0.0 if vmax <= 0 else min(1.0, value / vmax)
    return f"rgba(215,58,73,{a * 0.75:.3f})"


def token_view(sequences: Sequence[dict[str, Any]], colour_by: str = "kl") -> str:
    """Render sequences as coloured tokens with hover tooltips.

    Args:
        sequences: dicts with ``label``, ``prompt`` and ``tokens``; each token a dict with
            ``text``, ``kl``, ``entropy_base``, ``fork`` and ``top_base`` / ``top_post`` as
            ``[[token_text, probability], ...]``.
        colour_by: ``"kl"`` or ``"entropy_base"``.

    Returns:
        An HTML fragment (with its own small script and styles).

    Example:
        >>> html = token_view([{"label": "seq 0", "prompt": "Q", "tokens": []}])
    """
    if colour_by not in ("kl", "entropy_base"):
        raise ConfigError(f"colour_by must be 'kl' or 'entropy_base', got {colour_by!r}")
    root_id = f"tv-{uuid.uuid4().hex[:8]}"
    data_id = f"{root_id}-data"
    values = [t[colour_by] for s in sequences for t in s["tokens"]]
    vmax = sorted(values)[int(0.98 * (len(values) - 1))] if values else 1.0
    parts = []
    for si, seq in enumerate(sequences):
        spans = "".join(
            f"<span class='tok{' fork' if tok['fork'] else ''}' data-s='{si}' data-t='{ti}' "
            f"style='background:{_colour(tok[colour_by], vmax)}'>{esc(tok['text'])}</span>"
            for ti, tok in enumerate(seq["tokens"])
        )
        parts.append(
            f"<div class='seq'><span class='lbl'>{esc(seq['label'])}</span>"
            f"<span class='prompt'>{esc(seq['prompt'])}</span>{spans}</div>"
        )
    legend = (
        f"<p class='muted'>Colour: {esc(colour_by)} (darkest ≥ {vmax:.3g}); red outline: fork "
        "(argmaxes differ). Hover a token for both models' top-5.</p>"
    )
    script = _JS % {"data_id": data_id, "root_id": root_id}
    return (
        f"<style>{_CSS}</style>{legend}<div class='tv' id='{root_id}'>{''.join(parts)}</div>"
        f"{json_script(data_id, list(sequences))}<script>{script}</script>"
    )
