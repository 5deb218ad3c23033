"""The persona analysis of a model family in one call: directions, projections, shifts, latents.

Persona selection (BRIEF.md §5) asks which persona of the base each kind of post-training
picked. `analyse_personas` answers it the way the CLI (``postlens personas``), the HTML report and
notebooks all do:

1. persona directions of the base from persona-tagged sets (one persona against the others,
   per layer, with held-out AUROC to pick a layer);
2. the mean projection of the same untagged prompts on each direction in base and children,
   and the cosine of each child's mean activation shift with each direction;
3. given an SAE of the base, latent diffing of base and children on those prompts, with the
   latents that align with a direction or separate the tagged sets flagged as persona features.

Example:
    >>> pairs = ModelPair.load_family("organism:base", {"sft": "organism:sft", "rl": "organism:rl"})  # doctest: +SKIP
    >>> found = analyse_personas(pairs, sets, prompts, sae=load_sae(folder))  # doctest: +SKIP
    >>> found.summary()["sft"]["toward"]  # doctest: +SKIP
    'careful'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from postlens.probes.persona_projections import PersonaProjections, projections_of
from postlens.probes.personas import (
    PersonaSet,
    Text,
    _html_table,
    full_text,
    mean_activations,
    one_vs_rest_directions,
)


@dataclass
class PersonaAnalysis:
    """Persona directions of the base and what each child did along them.

    Attributes:
        directions: the base's persona directions at every layer.
        projections: untagged prompts projected on each persona's best direction, per model.
        shifts: child → persona → ``{"layer", "cosine", "shift_norm"}``: the child's mean
            activation shift on the untagged prompts at that layer, against the direction.
        features: SAE latent diffing with persona flags (`FeatureDiff`), when an SAE was given.
        sae: the SAE's source, hook, width and quality on the corpus, when one was given.
    """

    directions: PersonaSet
    projections: PersonaProjections
    shifts: dict[str, dict[str, dict[str, float]]]
    features: Any = None
    sae: dict[str, Any] | None = None

    @property
    def children(self) -> list[str]:
        return list(self.shifts)

    def summary(self) -> dict[str, Any]:
        """Per child: the persona its projection moved toward most and its most-moved flagged
        latent; with an SAE, the latent-diffing answer (`FeatureDiff.summary`) under ``"latents"``.
        """
        frame = self.projections.to_frame()
        out: dict[str, Any] = {}
        for child in self.children:
            rows = frame[frame.model == child].set_index("persona")["change_vs_base"]
            out[child] = {
                "toward": str(rows.idxmax()),
                "projection_change": {k: float(v) for k, v in rows.items()},
                "top_persona_latent": self._top_flagged(child),
            }
        if self.features is not None:
            out["latents"] = self.features.summary()
        return out

    def _top_flagged(self, child: str) -> dict[str, Any] | None:
        diff = self.features
        if diff is None or not diff.flags:
            return None
        latent = max(diff.flags, key=lambda i: abs(diff.change(child)[i]))
        flag = diff.flags[latent]
        return {"latent": int(latent), "persona": flag["persona"], "effect": flag.get(child),
                "change": float(diff.change(child)[latent])}  # fmt: skip

    def to_frame(self) -> Any:
        """One row per (model, persona): projection mean, change vs base, shift cosine."""
        frame = self.projections.to_frame()
        frame["shift_cosine"] = [
            self.shifts.get(m, {}).get(p, {}).get("cosine")
            for m, p in zip(frame.model, frame.persona, strict=True)
        ]
        return frame

    def to_json(self) -> dict[str, Any]:
        return {
            "directions": self.directions.to_json(),
            "projections": self.projections.to_json(),
            "shifts": self.shifts,
            "sae": self.sae,
            "features": None if self.features is None else self.features.to_json(),
            "summary": self.summary(),
        }

    def _repr_html_(self) -> str:
        return f"<div><b>persona analysis</b>{_html_table(self.to_frame())}</div>"


def analyse_personas(
    pairs: Mapping[str, Any],
    sets: Mapping[str, Sequence[Text]],
    prompts: Sequence[Text],
    corpus: Sequence[str] | None = None,
    sae: Any = None,
    sae_source: str | None = None,
    top_n: int = 20,
    cos_threshold: float = 0.3,
    auroc_threshold: float = 0.8,
    seed: int = 0,
) -> PersonaAnalysis:
    """Directions of the base, projections and shifts of each child, and SAE latent diffing.

    Args:
        pairs: child name → `ModelPair`, all sharing the base (``ModelPair.load_family``).
        sets: persona → tagged texts or ``(tag, text)`` pairs (only the text's tokens are
            averaged, so sets that differ by the tag alone isolate the persona from content).
        prompts: the same untagged prompts for every model.
        corpus: texts for the SAE's quality and top activating contexts (default: `prompts`).
        sae: an SAE trained on the base (optional; without it latent diffing is skipped).
        sae_source: where the SAE came from, for provenance.
        top_n, cos_threshold, auroc_threshold: see `postlens.diffs.features.persona_features`.
        seed: the held-out split of the persona sets.

    Example:
        >>> analyse_personas(pairs, sets, prompts).to_frame()  # doctest: +SKIP
    """
    if not pairs:
        raise ValueError("need at least one child")
    first = next(iter(pairs.values()))
    base, tok = first.base, first.tokenizer
    directions = one_vs_rest_directions(base, tok, sets, seed=seed)
    best = directions.best()
    models = {"base": base, **{n: p.post for n, p in pairs.items()}}
    layers = sorted({d.layer for d in best.values()})
    # One forward pass per model serves both the projections and the mean shifts.
    acts = {name: mean_activations(m, tok, prompts, layers) for name, m in models.items()}
    projections = projections_of(best, acts)
    shifts = {child: _shifts(acts[child], acts["base"], best) for child in pairs}
    result = PersonaAnalysis(directions, projections, shifts)
    if sae is not None:
        _add_features(result, sae, sae_source, pairs, sets, prompts, corpus,
                      (top_n, cos_threshold, auroc_threshold))  # fmt: skip
    return result


def _shifts(
    acts: Mapping[int, Tensor], base_acts: Mapping[int, Tensor], best: Mapping[str, Any]
) -> dict[str, dict[str, float]]:
    """Persona → the child's mean activation shift at the direction's layer, against it."""
    row = {}
    for persona, d in best.items():
        shift = (acts[d.layer] - base_acts[d.layer]).mean(0)
        norm = float(shift.norm())
        cos = float(shift @ d.vector.float()) / max(norm, 1e-12)
        row[persona] = {"layer": d.layer, "cosine": cos, "shift_norm": norm}
    return row


def _add_features(
    result: PersonaAnalysis,
    sae: Any,
    source: str | None,
    pairs: Mapping[str, Any],
    sets: Mapping[str, Sequence[Text]],
    prompts: Sequence[Text],
    corpus: Sequence[str] | None,
    thresholds: tuple[int, float, float],
) -> None:
    from postlens.diffs.features import persona_features
    from postlens.diffs.sae import check_sae, sae_quality
    from postlens.hooks import parse_hook

    first = next(iter(pairs.values()))
    hook = check_sae(sae, first.base.hf_model)
    point = parse_hook(hook, first.n_layers)
    # Directions are read after a block: only an SAE at hook_resid_post compares with them.
    at_layer = result.directions.at(point.layer) if point.site == "hook_resid_post" else None
    texts = list(corpus) if corpus is not None else [full_text(t) for t in prompts]
    top_n, cos, auroc = thresholds
    result.features = persona_features(
        sae, pairs, prompts, at_layer, sets, texts, top_n, cos, auroc
    )
    result.sae = {"source": source, "hook": hook, "d_sae": int(sae.cfg.d_sae),
                  "quality": sae_quality(sae, first.base, texts)}  # fmt: skip
