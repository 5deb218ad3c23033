"""Report section: persona features (persona vectors, arXiv 2507.21509; persona features in SAE
latents, arXiv 2506.19823).

Computed by ``fam.personas()`` (`postlens.diffs.personas.analysis`); rendered from the
`PersonaAnalysis` alone, so a report read back from JSON renders the same.

Example:
    >>> SECTION.name, SECTION.default
    ('personas', True)
"""

from __future__ import annotations

from typing import Any

from postlens.reporting.section import ReportContext, Section
from postlens.viz import figures
from postlens.viz.html import esc, figure_div, table

INTRO = (
    "<p class='muted'>Persona directions: on the base, the mean activation of questions under "
    "one persona's tag minus the other personas' (same questions, so only the persona "
    "differs), per layer (persona vectors, arXiv 2507.21509). Untagged questions are then "
    "projected on each direction in every model; the shift cosine compares a child's mean "
    "activation change with the direction. SAE latents of the base are ranked by their "
    "activation change in each child (arXiv 2506.19823).</p>"
)


def _compute(ctx: ReportContext) -> Any:
    from postlens.diffs.personas.analysis import PersonaConfig, persona_inputs

    cfg = PersonaConfig(seed=ctx.config.seed)
    if ctx.config.personas is None:
        return ctx.family.personas(config=cfg)
    given = persona_inputs(ctx.family.inputs, cfg, ctx.config.personas, ctx.config.prompts)
    return ctx.family.personas(given, config=cfg)


def _unavailable(ctx: ReportContext) -> str | None:
    if ctx.config.personas is not None or ctx.family.inputs.provides("personas"):
        return None
    return (
        "persona analysis needs persona-tagged sets and untagged prompts for this model "
        "(postlens report ... --personas FILE --prompts FILE, or fam.personas(inputs))"
    )


def _render(result: Any) -> str:
    dirs = [
        {"persona": p, "best layer": result.best(p).layer, "held-out AUROC": result.best(p).auroc}
        for p in result.directions
    ]
    parts = [
        INTRO,
        table(dirs),
        figure_div(figures.persona_projections(result.projections)),
        table(result.to_frame().round(4).to_dict("records")),
    ]
    if result.features is None:
        parts.append(
            "<p class='muted'>No SAE for this model (or SAELens is not installed: "
            "<code>pip install 'postlens[sae]'</code>): latent diffing skipped.</p>"
        )
    else:
        parts.append(_latents(result))
    return "".join(parts)


def _latents(result: Any) -> str:
    diff, sae = result.features, result.sae
    moved = [
        {"child": c, "latents moved": diff.moved(c), "l1 change": diff.l1_change(c),
         "top latents": ", ".join(map(str, diff.top(c, 10)))}
        for c in diff.children
    ]  # fmt: skip
    parts = [
        f"<h3>SAE latents ({diff.n_latents}, {esc(sae.hook)})</h3>"
        f"<p class='muted'>Variance explained {sae.variance_explained:.3f}, L0 {sae.l0:.1f}.</p>",
        table(moved),
    ]
    overlap = diff.overlap()
    if overlap:
        parts.append(table([{k: _short(v) for k, v in overlap.items() if k != "children"}]))
    parts.append(
        "<h3>Persona features (flagged latents, most moved first)</h3>" + table(_flag_rows(diff))
    )
    return "".join(parts)


def _short(value: Any, n: int = 8) -> Any:
    """Long latent lists shortened for a table cell: the first `n` and how many in all."""
    if isinstance(value, list) and len(value) > n:
        return ", ".join(map(str, value[:n])) + f", … ({len(value)})"
    return value


def _flag_rows(diff: Any, n: int = 30) -> list[dict[str, Any]]:
    order = sorted(diff.flags, key=lambda i: -max(abs(diff.change(c)[i]) for c in diff.children))
    return [
        {"latent": i, "persona": diff.flags[i]["persona"],
         **{c: f"{diff.flags[i].get(c)} ({diff.change(c)[i]:+.3f})" for c in diff.children},
         **diff.flags[i]["evidence"],
         "top context": diff.contexts.get(i, [{}])[0].get("context", "")}
        for i in order[:n]
    ]  # fmt: skip


def _sentences(result: Any) -> list[str]:
    summary = result.summary()
    parts = []
    for c in result.children:
        s = summary[c]
        text = f"{c} moved most toward {s.toward} ({s.projection_change[s.toward]:+.2f})"
        if not s.rose:  # the largest change is a fall: the child moved toward no persona
            text = f"{c}'s projection fell on every persona (least on {s.toward}, {s.projection_change[s.toward]:+.2f})"
        elif s.ties:  # a headline within noise is a tie, not a finding
            alike = ", ".join(f"{p} ({s.projection_change[p]:+.2f})" for p in s.ties)
            text = f"{c} moved toward {s.toward} ({s.projection_change[s.toward]:+.2f}) and {alike} alike (a tie, within noise)"
        if (t := s.top_persona_latent) is not None:
            text += f", its most-moved persona latent is {t.latent} ({t.persona}, {t.effect})"
        parts.append(text)
    text = "Personas, on untagged questions: " + "; ".join(parts)
    latents = summary.latents
    if latents is not None and latents.jaccard_top_n is not None:
        text += (
            f". {latents.moved_more} moved more SAE latents ("
            + " vs ".join(f"{c} {n}" for c, n in latents.moved.items())
            + f"); top-{result.features.top_n} Jaccard of the two children "
            f"{latents.jaccard_top_n:.2f}"
        )
    return [text + "."]


def _cards(result: Any, child: str) -> list[tuple[str, str]]:
    s = result.summary()[child]
    top = s.top_persona_latent
    if top is not None:
        value = f"latent {top.latent}: {top.persona}, {top.effect}"
    elif not s.rose:
        value = "toward none: the projection fell on every persona"
    elif s.ties:
        value = "tie: projection moved toward " + " ≈ ".join((s.toward, *s.ties))
    else:
        value = f"projection moved most toward {s.toward}"
    return [("most-moved persona feature", value)]


SECTION = Section(
    name="personas",
    title="Persona features",
    compute=_compute,
    render=_render,
    sentences=_sentences,
    cards=_cards,
    unavailable=_unavailable,
    default=True,
    cost="one forward pass per model over the persona sets and untagged prompts, and the SAE "
    "over the base's, each child's and the corpus's tokens",
)
