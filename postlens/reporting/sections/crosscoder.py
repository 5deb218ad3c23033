"""Report section: crosscoder latents (Anthropic 2024; Minder et al., arXiv 2504.02922).

Computed by ``fam.crosscoder()`` (three-way, one latent space, when the family has several
children); rendered from the `CrosscoderResult` alone. Off by default: it trains a crosscoder.

Example:
    >>> SECTION.name, SECTION.default
    ('crosscoder', False)
"""

from __future__ import annotations

from typing import Any

from postlens.reporting.section import ReportContext, Section
from postlens.viz.html import esc, figure_div, table

INTRO = (
    "<p class='muted'>A BatchTopK crosscoder reads the same tokens' activations of every model "
    "and decodes one latent code separately for each. A latent's relative decoder norm Δ against "
    "the base is ≈0 when only the base has it, ≈0.5 when both do, ≈1 when only the child does "
    "(classes: Δ ≤ 0.1, 0.4–0.6, ≥ 0.9). Latent Scaling (Minder et al., arXiv 2504.02922) checks "
    "each child-only (base-only) latent: ν, how much of its direction the other model still holds "
    "(in its error, ν^ε, or in its reconstruction, ν^r), is ≈0 for a genuine one; above the "
    "threshold it is flagged as a likely artifact.</p>"
)


def _compute(ctx: ReportContext) -> Any:
    from postlens.diffs.crosscoder.model import CrosscoderConfig

    texts = None
    if ctx.config.prompts is not None:
        from postlens.reporting.sections.common import records

        texts = [r.prompt + (r.completion or "") for r in records(ctx)]
    cfg = CrosscoderConfig(seed=ctx.config.seed)
    if len(ctx.family.children) > 1:  # one latent space for the base and every child
        return ctx.family.crosscoder_three_way(texts, cfg, progress=False)
    return ctx.family.crosscoder(texts, cfg, progress=False)


def _unavailable(ctx: ReportContext) -> str | None:
    if ctx.family.inputs.provides("corpus") or ctx.config.prompts is not None:
        return None
    return "a crosscoder needs texts to train on (--prompts FILE)"


def _results(result: Any) -> dict[str, Any]:
    """Crosscoder results by label: one three-way result, or one per child."""
    if result.kind == "crosscoder":
        return {"+".join(result.children): result}
    return dict(result.results)


def _render(result: Any) -> str:
    parts = [INTRO]
    for label, r in _results(result).items():
        s = r.summary()
        quality = ", ".join(f"{m} {v:.3f}" for m, v in s.variance_explained.items())
        parts.append(
            f"<h3>{esc(label)}: {s.n_latents} latents at {esc(r.hook)}</h3><p class='muted'>"
            f"Variance explained {esc(quality)}; L0 {s.l0:.1f}; dead {100 * s.dead_fraction:.1f}%; "
            f"trained in {s.training_seconds}s (peak memory {s.peak_memory_mib} MiB).</p>"
        )
        parts.append(table(_rows(s)))
        parts.append(figure_div(r.plot()))
    return "".join(parts)


def _rows(s: Any) -> list[dict[str, Any]]:
    return [
        {"child": c, "base-only": n.base_only, "shared": n.shared, "child-only": n.child_only,
         "other": n.other, "dead": n.dead,
         "child-only genuine": s.child_only_scaling[c].n_genuine,
         "child-only artifacts": s.child_only_scaling[c].n_artifacts,
         "median ν^ε": s.child_only_scaling[c].median_nu_error,
         "base-only genuine": s.base_only_scaling[c].n_genuine}
        for c, n in s.counts.items()
    ]  # fmt: skip


def _sentences(result: Any) -> list[str]:
    out = []
    for r in _results(result).values():
        s = r.summary()
        parts = [
            f"{c} {n.child_only} child-only ({s.child_only_scaling[c].n_genuine} genuine by "
            f"Latent Scaling) and {n.base_only} base-only of {s.n_latents}"
            for c, n in s.counts.items()
        ]
        out.append("Crosscoder latents: " + "; ".join(parts) + ".")
    return out


def _cards(result: Any, child: str) -> list[tuple[str, str]]:
    for r in _results(result).values():
        if child in r.children:
            n = r.summary().counts[child]
            return [("crosscoder child-only / base-only", f"{n.child_only} / {n.base_only}")]
    return []


SECTION = Section(
    name="crosscoder",
    title="Crosscoder latents",
    compute=_compute,
    render=_render,
    sentences=_sentences,
    cards=_cards,
    unavailable=_unavailable,
    default=False,
    cost="every model's activations over the training texts (200k tokens by default) and a "
    "crosscoder trained on them; minutes on a CPU",
)
