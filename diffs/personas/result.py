"""The result of the persona analysis: `PersonaAnalysis`, its summary, views and JSON.

Computed by `postlens.diffs.personas.analysis.analyse_personas` (``fam.personas()``). Everything
the report shows is kept in plain figures (per-layer direction quality, every prompt's
projection, each child's shift, the latent statistics), so the object read back from JSON
renders and summarises like the one computed; only the direction vectors themselves
(`PersonaAnalysis.vectors`, for monitors and projections) stay in memory.

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", sft="organism:sft", rl="organism:rl")
    >>> found = fam.personas(config=pl.PersonaConfig(sae=None, n_per_persona=8, n_prompts=8))
    >>> found.summary()["rl"].toward in ("careful", "hasty", "sloppy")
    True
    >>> from dataclasses import asdict
    >>> asdict(pl.Result.from_json(found.to_json()).summary()) == asdict(found.summary())
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from postlens.diffs.features.result import FeatureDiff, FeatureSummary
from postlens.probes.personas.directions import PersonaSet, frame_table
from postlens.probes.personas.projections import PersonaProjections
from postlens.results.protocol import Result, summary_dict


@dataclass(frozen=True)
class DirectionQuality:
    """How well one persona's direction at one layer separates held-out texts.

    Attributes:
        persona: the persona.
        layer: the block after which it is read.
        auroc: held-out AUROC of the projection.
        separation: held-out d' of the projection.
        norm: norm of the raw mean difference.
    """

    persona: str
    layer: int
    auroc: float | None
    separation: float | None
    norm: float


@dataclass(frozen=True)
class PersonaShift:
    """A child's mean activation shift on the untagged prompts, against one direction.

    Attributes:
        layer: the direction's (best) layer.
        cosine: cosine of the shift with the direction.
        shift_norm: norm of the shift (so the projection change is ``shift_norm · cosine``).
    """

    layer: int
    cosine: float
    shift_norm: float


@dataclass(frozen=True)
class SAEInfo:
    """The SAE used for latent diffing: where it came from, its hook, width and quality.

    Attributes:
        source: the SAE's folder or release, ``trained`` or ``given``.
        hook: the hook it reads.
        d_sae: its latents.
        variance_explained: 1 − ‖x − x̂‖² / ‖x − x̄‖² on the corpus.
        l0: mean active latents per token.
        dead_fraction: share of latents never active on the corpus.
        n_tokens: corpus tokens measured.
    """

    source: str | None
    hook: str
    d_sae: int
    variance_explained: float
    l0: float
    dead_fraction: float
    n_tokens: int


@dataclass(frozen=True)
class PersonaLatent:
    """A child's most-moved persona-flagged latent.

    Attributes:
        latent: the latent's index.
        persona: the persona it was flagged for.
        effect: ``amplified``, ``suppressed`` or ``unchanged`` in that child.
        change: its change of mean activation.
    """

    latent: int
    persona: str
    effect: str | None
    change: float


def tied_with(
    values: Mapping[str, Mapping[str, np.ndarray]], child: str, top: str
) -> tuple[str, ...]:
    """The personas whose projection change in `child` is within noise of `top`'s.

    Every model projects the same texts, so the comparison is paired: per text i, the change
    d_p(i) = proj_child(i) − proj_base(i) on persona p's direction, and e(i) = d_top(i) − d_p(i).
    Persona p ties with `top` when the 95% interval of mean(e) (normal approximation,
    1.96 standard errors over texts) reaches 0. The test is ours.

    Example:
        >>> base = {"a": np.zeros(4), "b": np.zeros(4)}
        >>> child = {"a": np.array([1.0, 1.1, 0.9, 1.0]), "b": np.array([0.0, 2.0, 0.0, 2.1])}
        >>> tied_with({"base": base, "rl": child}, "rl", "b")
        ('a',)
        >>> child["b"] = np.array([2.0, 2.1, 1.9, 2.0])  # clearly above a on every text
        >>> tied_with({"base": base, "rl": child}, "rl", "b")
        ()
    """
    change = {p: np.asarray(v) - np.asarray(values["base"][p]) for p, v in values[child].items()}
    out = []
    for persona, d in change.items():
        if persona == top:
            continue
        e = change[top] - d
        half = 1.96 * e.std(ddof=1) / np.sqrt(len(e)) if len(e) > 1 else np.inf
        if e.mean() - half <= 0:
            out.append(persona)
    return tuple(out)


@dataclass(frozen=True)
class ChildPersonas:
    """What one child did along the base's persona directions.

    Attributes:
        toward: the persona whose projection rose most against the base.
        projection_change: persona → change of the mean projection against the base.
        shift_cosine: persona → cosine of the child's mean shift with the direction.
        top_persona_latent: its most-moved persona-flagged latent (``None`` without an SAE or
            flags).
        ties: the other personas whose change is within noise of `toward`'s (`tied_with`):
            when any, `toward` is not a finding.
    """

    toward: str
    projection_change: dict[str, float]
    shift_cosine: dict[str, float]
    top_persona_latent: PersonaLatent | None
    ties: tuple[str, ...] = ()

    @property
    def rose(self) -> bool:
        """Whether `toward`'s projection rose at all: when every persona's fell, `toward` is
        only the one that fell least, and the child moved toward none of them.

        Example:
            >>> ChildPersonas("prose", {"prose": -1.1, "equation": -28.4}, {}, None).rose
            False
        """
        return self.projection_change[self.toward] > 0


@dataclass(frozen=True)
class PersonaSummary:
    """The persona answer per child, and the latent-diffing answer (``summary["rl"].toward``).

    Attributes:
        children: child → `ChildPersonas`.
        best_layers: persona → the layer of its best direction.
        latents: the SAE latent-diffing figures (``None`` without an SAE).
    """

    children: dict[str, ChildPersonas]
    best_layers: dict[str, int]
    latents: FeatureSummary | None = None

    def __getitem__(self, child: str) -> ChildPersonas:
        return self.children[child]


@dataclass
class PersonaAnalysis(Result[PersonaSummary], kind="personas"):
    """Persona directions of the base and what each child did along them.

    Attributes:
        directions: persona → the quality of its direction at every layer.
        projections: untagged prompts projected on each persona's best direction, per model.
        shifts: child → persona → its mean activation shift against the direction.
        features: SAE latent diffing with persona flags, when an SAE was used.
        sae: the SAE's source, hook, width and quality, when one was used.
        vectors: the directions themselves (in memory only; ``None`` when read from JSON:
            save them with `PersonaDirection.save`).
    """

    directions: dict[str, list[DirectionQuality]]
    projections: PersonaProjections
    shifts: dict[str, dict[str, PersonaShift]]
    features: FeatureDiff | None = None
    sae: SAEInfo | None = None
    vectors: PersonaSet | None = field(default=None, repr=False, compare=False)

    @property
    def children(self) -> list[str]:
        return list(self.shifts)

    def best(self, persona: str) -> DirectionQuality:
        """The layer whose direction separates held-out texts best: highest (AUROC, d')."""
        return max(self.directions[persona], key=lambda d: (d.auroc or 0.0, d.separation or 0.0))

    def summary(self) -> PersonaSummary:
        """Per child: the persona its projection moved toward most, the shift cosines and its
        most-moved flagged latent; with an SAE, the latent-diffing answer."""
        frame = self.projections.to_frame()
        children = {}
        for child in self.children:
            rows = frame[frame.model == child].set_index("persona")["change_vs_base"]
            top = str(rows.idxmax())
            children[child] = ChildPersonas(
                top,
                {str(k): float(v) for k, v in rows.items()},
                {p: s.cosine for p, s in self.shifts[child].items()},
                self._top_flagged(child),
                tied_with(self.projections.values, child, top),
            )
        latents = None if self.features is None else self.features.summary()
        return PersonaSummary(children, {p: self.best(p).layer for p in self.directions}, latents)

    def _top_flagged(self, child: str) -> PersonaLatent | None:
        diff = self.features
        if diff is None or not diff.flags:
            return None
        change = diff.change(child)
        latent = max(diff.flags, key=lambda i: abs(change[i]))
        flag = diff.flags[latent]
        return PersonaLatent(int(latent), flag["persona"], flag.get(child), float(change[latent]))

    def to_frame(self) -> Any:
        """One row per (model, persona): projection mean, change vs base, shift cosine."""
        frame = self.projections.to_frame()
        frame["shift_cosine"] = [
            s.cosine if (s := self.shifts.get(m, {}).get(p)) is not None else None
            for m, p in zip(frame.model, frame.persona, strict=True)
        ]
        return frame

    def to_json(self) -> dict[str, Any]:
        """Every figure (schema of ``postlens personas --json``); `from_json` reads it back."""
        return {
            "kind": self.kind,
            "directions": {
                "best_layers": {p: self.best(p).layer for p in self.directions},
                "personas": {
                    p: {
                        "name": p,
                        "best_layer": self.best(p).layer,
                        "layers": [asdict(d) for d in ds],
                    }
                    for p, ds in self.directions.items()
                },
            },  # fmt: skip
            "projections": self.projections.to_json(),
            "shifts": {c: {p: asdict(s) for p, s in per.items()} for c, per in self.shifts.items()},
            "sae": None if self.sae is None else asdict(self.sae),
            "features": None if self.features is None else self.features.to_json(),
            "summary": summary_dict(self.summary()),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PersonaAnalysis:
        directions = {
            p: [DirectionQuality(**row) for row in d["layers"]]
            for p, d in data["directions"]["personas"].items()
        }
        shifts = {
            c: {p: PersonaShift(**s) for p, s in per.items()} for c, per in data["shifts"].items()
        }
        features = data.get("features")
        return cls(
            directions,
            PersonaProjections.from_json(data["projections"]),
            shifts,
            None if features is None else FeatureDiff.from_json(features),
            None if data.get("sae") is None else SAEInfo(**data["sae"]),
        )

    def plot(self) -> Any:
        """Mean projection of the untagged prompts on each persona direction, per model."""
        from postlens.viz import figures

        return figures.persona_projections(self.projections)

    def _repr_html_(self) -> str:
        return f"<div><b>persona analysis</b>{frame_table(self.to_frame())}</div>"
