"""HTML of each report section, and the summary cards at the top of the report."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from postlens.viz import figures
from postlens.viz.html import esc, figure_div, table
from postlens.viz.tokens import token_view
from postlens.viz.verdict import verdict

TITLES = {
    "weights": "Weight shifts",
    "forks": "Fork tokens",
    "activations": "Activation shifts and patching",
    "passk": "Reasoning boundary: pass@k",
    "confidence": "Confidence trajectories",
    "personas": "Persona features",
}


def _weights(family: Any) -> str:
    rows = [
        {"child": k, "rel_norm": d.summary["rel_norm"], "changed (|Δ|>atol)": d.summary["frac_changed_tol"],
         "changed (exact)": d.summary["frac_changed_exact"], "params": d.summary["n_params"],
         "MiB read": d.summary["bytes_read"] / 2**20, "seconds": d.summary["seconds"]}
        for k, d in family.children.items()
    ]  # fmt: skip
    parts = [
        "<p class='muted'>Streamed tensor by tensor from safetensors. Update sparsity = 1 − share "
        "changed. Size of a weight change does not predict behavioural change (RL's Razor): read "
        "it next to the fork and KL figures below.</p>",
        table(rows),
        *(
            figure_div(figures.weight_heatmap(d, f"Relative update norm: {k}"))
            for k, d in family.children.items()
        ),
        figure_div(figures.sparsity_by_layer(family.children)),
    ]
    for label, cos in family.cosines.items():
        values = [v for v in cos.values() if v is not None]
        mean = sum(values) / len(values) if values else float("nan")
        parts.append(
            f"<p>Mean cosine between the two updates ({esc(label)}): <b>{mean:.3f}</b></p>"
        )
        parts.append(figure_div(figures.update_cosine(cos, label)))
    return "".join(parts)


def _forks(results: dict[str, Any]) -> str:
    keys = ("n_sequences", "n_positions", "agreement", "n_forks", "mean_entropy_all", "mean_entropy_forks",
            "share_forks_in_top20_entropy", "share_entropy_below_0.01", "share_entropy_above_0.672", "mean_kl")  # fmt: skip
    rows = [
        {
            "child": k,
            **{key: r.summary[key] for key in keys},
            "top-5 coverage": r.summary["topk_coverage"]["5"],
        }
        for k, r in results.items()
    ]
    parts = [
        "<p class='muted'>Both models teacher-forced on completions sampled from each child. A fork is "
        "a position whose argmaxes differ (or whose JS divergence exceeds the threshold).</p>",
        table(rows),
        figure_div(figures.topk_coverage(results)),
        figure_div(figures.entropy_at_forks(results)),
    ]
    for name, r in results.items():
        top = r.forks().head(12)
        cols = [
            "seq",
            "pos",
            "context",
            "token_base",
            "token_post",
            "entropy_base",
            "kl",
            "post_rank_in_base",
        ]
        parts.append(
            f"<h3>{esc(name)}: strongest forks</h3>{table(top[cols].to_dict('records'), cols)}"
        )
        parts.append(
            f"<details open><summary>{esc(name)}: token view (colour = KL)</summary>{token_view(r.token_view(8))}</details>"
        )
    return "".join(parts)


def _activations(results: dict[str, Any]) -> str:
    rows = [
        {
            "child": k,
            "output KL": r.output_kl,
            "positions": r.n_positions,
            "parting layer (≥50% patched)": r.parting_layer(),
        }
        for k, r in results.items()
    ]
    tables = "".join(
        f"<h3>{esc(k)}</h3>{table(r.to_frame().to_dict('records'))}" for k, r in results.items()
    )
    return table(rows) + figure_div(figures.layer_profile(results)) + tables


def _passk(result: Any) -> str:
    frame = result.to_frame().pivot(index="k", columns="model", values="pass_at_k").reset_index()
    return figure_div(figures.pass_at_k_curves(result)) + table(frame.to_dict("records"))


def _confidence(results: dict[str, Any]) -> str:
    rows = []
    for name, r in results.items():
        t = r["trajectories"]
        rows.append({"model": name, "traces": len(t.labels), "overconfidence": float(t.overconfidence.mean()),
                     "best probe layer": r["probes"].best_layer,
                     "probe r (held out)": next(x["pearson"] for x in r["probes"].rows if x["layer"] == r["probes"].best_layer)})  # fmt: skip
    styles = [
        {"model": name, "style": k, **{kk: v for kk, v in d.items() if kk != "mean_trajectory"}}
        for name, r in results.items()
        for k, d in r["trajectories"].by_label().items()
    ]
    layers = [{"model": name, **row} for name, r in results.items() for row in r["probes"].rows]
    return (
        "<p class='muted'>Traces cut at k/5 of their reasoning, an answer forced, pass rate of the "
        "continuations (BRIEF.md §4). Overconfidence = Σ score_k·w_k, w = linspace(0.5, −0.5, 6). "
        "Dashed: a ridge probe on the residual stream (ours), one forward pass.</p>"
        + figure_div(figures.confidence_trajectories(results))
        + table(rows)
        + "<h3>By persona style</h3>"
        + table(styles)
        + "<details><summary>Probe quality per layer (held-out traces)</summary>"
        + table(layers)
        + "</details>"
    )


def _personas(result: Any) -> str:
    dirs = [
        {"persona": k, "best layer": r.best.provenance.layer, "held-out AUROC": r.best.auroc}
        for k, r in result.directions.personas.items()
    ]
    parts = [
        "<p class='muted'>Persona directions: on the base, the mean activation of questions under "
        "one persona's tag minus the other personas' (same questions, so only the persona "
        "differs), per layer (BRIEF.md §5). Untagged questions are then projected on each "
        "direction in every model; the shift cosine compares a child's mean activation change "
        "with the direction.</p>",
        table(dirs),
        figure_div(figures.persona_projections(result.projections)),
        table(result.to_frame().round(4).to_dict("records")),
    ]
    diff = result.features
    if diff is None:
        parts.append("<p class='muted'>No SAE for this model: latent diffing skipped.</p>")
        return "".join(parts)
    q = result.sae["quality"]
    parts.append(
        f"<h3>SAE latents ({len(diff.mean['base'])}, {esc(result.sae['hook'])})</h3>"
        f"<p class='muted'>Variance explained {q['variance_explained']:.3f}, L0 {q['l0']:.1f}.</p>"
    )
    moved = [
        {"child": c, "latents moved": diff.moved(c), "l1 change": diff.l1_change(c),
         "top latents": ", ".join(map(str, diff.top(c, 10)))}
        for c in diff.children
    ]  # fmt: skip
    parts.append(table(moved))
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


RENDERERS: dict[str, Callable[[Any], str]] = {
    "confidence": _confidence,
    "personas": _personas,
    "weights": _weights,
    "forks": _forks,
    "activations": _activations,
    "passk": _passk,
}


def _get(data: Any, name: str) -> Any:
    for s in data.sections:
        if s.name == name and s.ok:
            return s.result
    return None


def _persona_card(personas: Any, child: str) -> str:
    if not personas:
        return "–"
    summary = personas.summary()[child]
    top = summary["top_persona_latent"]
    if top is not None:
        return f"latent {top['latent']}: {top['persona']}, {top['effect']}"
    return f"projection moved most toward {summary['toward']}"


def summary_cards(data: Any) -> str:
    """What changed, in five numbers per child."""
    weights, forks, acts = _get(data, "weights"), _get(data, "forks"), _get(data, "activations")
    rows = []
    for child in data.config.children:
        cards: list[tuple[str, str]] = []
        if forks:
            s = forks[child].summary
            cards += [
                ("agreement with the base", f"{s['agreement']:.3f}"),
                ("top-5 coverage at disagreements", f"{s['topk_coverage']['5']:.3f}"),
            ]
        if weights:
            w = weights.children[child].summary
            cards += [
                ("global weight rel. norm", f"{w['rel_norm']:.3g}"),
                ("update sparsity (|Δ| ≤ 1e-5)", f"{1 - w['frac_changed_tol']:.2%}"),
            ]
        if acts:
            layer = acts[child].parting_layer()
            label = "first layer whose patch recovers half the output KL"
            cards.append((label, "–" if layer is None else str(layer)))
        cards.append(("most-moved persona feature", _persona_card(_get(data, "personas"), child)))
        html = "".join(
            f"<div class='card'><div class='v'>{esc(v)}</div><div class='k'>{esc(k)}</div></div>"
            for k, v in cards
        )
        rows.append(f"<h2>{esc(child)}</h2><div class='cards'>{html}</div>")
    words = "".join(f"<li>{esc(t)}</li>" for t in verdict(data))
    words = f"<ul class='verdict'>{words}</ul>" if words else ""
    return f"<section id='summary'><h2>Summary: what changed</h2>{words}{''.join(rows)}</section>"
