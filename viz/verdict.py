"""The report's summary in words: one sentence per section, written from the measured numbers.

A reader who opens the report should learn what each child changed without decoding the
figures first; every number in these sentences is also in the section below it.

Example:
    >>> sentences = verdict(data)  # doctest: +SKIP
    >>> sentences[0]  # doctest: +SKIP
    'Weights: sft moved them more than rl (relative change 0.050 vs 0.034, 1.45x); ...'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _weights(family: Any) -> str:
    rel = {c: d.summary["rel_norm"] for c, d in family.children.items()}
    changed = {c: d.summary["frac_changed_tol"] for c, d in family.children.items()}
    order = sorted(rel, key=rel.get, reverse=True)
    if len(order) == 1:
        c = order[0]
        return f"Weights: {c} changed them by {rel[c]:.3g} relative to the base, {_pct(changed[c])} of entries moved."
    a, b = order[:2]
    text = (
        f"Weights: {a} moved them more than {b} (global relative change {rel[a]:.4f} vs "
        f"{rel[b]:.4f}, {rel[a] / max(rel[b], 1e-12):.2f}×); entries changed: "
        + ", ".join(f"{c} {_pct(changed[c])}" for c in order)
    )
    cos = [v for values in family.cosines.values() for v in values.values() if v is not None]
    if cos:
        text += f"; the two updates have a mean per-tensor cosine of {np.mean(cos):.2f}"
    return text + "."


def _forks(results: dict[str, Any]) -> str:
    parts = [
        f"{c} agrees with the base's argmax at {_pct(r.summary['agreement'])} of positions "
        f"(top-5 coverage of its choices {_pct(r.summary['topk_coverage']['5'])})"
        for c, r in results.items()
    ]
    return "Fork tokens, teacher-forced on each child's own samples: " + "; ".join(parts) + "."


def _activations(results: dict[str, Any]) -> str:
    parts = []
    for c, r in results.items():
        layer = r.parting_layer()
        where = "no single layer" if layer is None else f"layer {layer}"
        parts.append(f"{c} output KL(child‖base) {r.output_kl:.3g}, half of it recovered by "
                     f"patching {where}")  # fmt: skip
    return "Activations: " + "; ".join(parts) + "."


def _passk(result: Any) -> str:
    k_max = max(next(iter(result.curves.values())))
    parts = [f"{m} {c[1]:.2f} → {c[k_max]:.2f}" for m, c in result.curves.items()]
    return f"pass@1 → pass@{k_max}: " + ", ".join(parts) + "."


def _confidence(results: dict[str, Any]) -> str:
    parts = [
        f"{m} {float(np.mean(r['trajectories'].overconfidence)):+.3f}" for m, r in results.items()
    ]
    return ("Overconfidence (Σ score·w, positive when the model is sure of its answer before "
            "reasoning): " + ", ".join(parts) + ".")  # fmt: skip


def _personas(result: Any) -> str:
    summary = result.summary()
    parts = []
    for c in result.children:
        s = summary[c]
        text = f"{c} moved most toward {s['toward']} ({s['projection_change'][s['toward']]:+.2f})"
        if s["top_persona_latent"]:
            t = s["top_persona_latent"]
            text += (
                f", its most-moved persona latent is {t['latent']} ({t['persona']}, {t['effect']})"
            )
        parts.append(text)
    text = "Personas, on untagged questions: " + "; ".join(parts)
    latents = summary.get("latents")
    if latents and "jaccard_top_n" in latents:
        text += (
            f". {latents['moved_more']} moved more SAE latents ("
            + " vs ".join(f"{c} {n}" for c, n in latents["moved"].items())
            + f"); top-"
            f"{result.features.top_n} Jaccard of the two children {latents['jaccard_top_n']:.2f}"
        )
    return text + "."


SENTENCES: dict[str, Callable[[Any], str]] = {
    "weights": _weights,
    "forks": _forks,
    "activations": _activations,
    "passk": _passk,
    "confidence": _confidence,
    "personas": _personas,
}


def verdict(data: Any) -> list[str]:
    """One sentence per successful section, in report order (a sentence that cannot be written
    from a section's result is left out rather than guessed)."""
    out = []
    for s in data.sections:
        if s.ok and s.name in SENTENCES:
            try:
                out.append(SENTENCES[s.name](s.result))
            except (KeyError, AttributeError, TypeError, ValueError, StopIteration):
                continue
    return out
