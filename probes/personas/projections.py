"""Persona readings of several models: projections on persona directions, and a training monitor.

`project_models` projects the same (untagged) texts on each persona direction in each model,
e.g. base, SFT and RL children, one forward pass per model; the change of the mean projection
against the base says which persona post-training moved toward (persona vectors, arXiv 2507.21509, as
monitors). `PersonaMonitor` is a `postlens.probes.training.monitor.Monitor` for the training callbacks.
Directions are applied to any model of the same shape (a child, or the model being trained), so
only the shape is checked, never the fingerprint.

Example:
    >>> import postlens as pl
    >>> from postlens.data.defaults import provider_for
    >>> from postlens.probes.training.callbacks import ProbeCallback
    >>> from postlens.probes.personas.directions import one_vs_rest_directions
    >>> fam = pl.load("organism:base", sft="organism:sft", rl="organism:rl")
    >>> models, tok = fam.models(), fam.tokenizer  # base, sft and rl
    >>> inputs = provider_for("organism:base").personas(10, 10)
    >>> found = one_vs_rest_directions(models["base"], tok, inputs.sets)
    >>> projections = project_models(found.best(), models, tok, inputs.prompts)
    >>> len(projections.to_frame())  # one row per (model, persona)
    9
    >>> projections.mean("rl", "hasty") < projections.mean("base", "hasty")  # RL moved off hasty
    True
    >>> callback = ProbeCallback([PersonaMonitor(found.best()["careful"], inputs.prompts[:4])])
    >>> list(callback.monitor.read(models["rl"], step=0))  # what the trainer's log receives
    ['persona/careful/projection']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from jaxtyping import Float
from torch import Tensor

from postlens.errors import ConfigError
from postlens.probes.personas.directions import (
    PersonaDirection,
    Text,
    frame_table,
    mean_activations,
)
from postlens.probes.provenance import check_compatible

if TYPE_CHECKING:
    from postlens.backends.base import ModelLike
    from postlens.models.types import Tokenizer


class PersonaMonitor:
    """A `Monitor`: the mean projection of fixed prompts on a persona direction.

    Example:
        >>> import postlens as pl
        >>> from postlens.data.defaults import provider_for
        >>> from postlens.probes.personas.directions import persona_directions
        >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
        >>> inputs = provider_for("organism:base").personas(10, 4)
        >>> careful, hasty = inputs.sets["careful"], inputs.sets["hasty"]
        >>> direction = persona_directions(pair.base, pair.tokenizer, careful, hasty, name="careful").best
        >>> reading = PersonaMonitor(direction, inputs.prompts).read(pair.post, pair.tokenizer)
        >>> list(reading), isinstance(reading["persona/careful/projection"], float)
        (['persona/careful/projection'], True)
    """

    def __init__(
        self, direction: PersonaDirection, prompts: Sequence[Text], name: str | None = None
    ) -> None:
        if not prompts:
            raise ConfigError("a monitor needs at least one prompt")
        self.direction, self.prompts = direction, list(prompts)
        self.name = name or f"persona/{direction.name}"

    def read(
        self,
        model: ModelLike,
        tokenizer: Tokenizer | None = None,
        batch: Sequence[Text] | None = None,
    ) -> dict[str, float]:
        """Mean projection of the held-out prompts (or of `batch`) on the direction."""
        tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
        prompts = list(batch) if batch is not None else self.prompts
        value = self.direction.project(model, tokenizer, prompts).mean()
        return {f"{self.name}/projection": float(value)}


@dataclass
class PersonaProjections:
    """Projections of the same texts on persona directions, in several models.

    Attributes:
        values: model → persona → per-text projection.
        layers: persona → the layer its direction reads.
    """

    values: dict[str, dict[str, np.ndarray]]
    layers: dict[str, int] = field(default_factory=dict)

    def mean(self, model: str, persona: str) -> float:
        return float(self.values[model][persona].mean())

    def to_frame(self) -> Any:
        """One row per (model, persona): mean and std of the projection, change vs the base."""
        import pandas as pd

        rows = []
        for model, per in self.values.items():
            for persona, v in per.items():
                base = self.values.get("base", {}).get(persona)
                rows.append({
                    "model": model, "persona": persona, "layer": self.layers.get(persona),
                    "mean": float(v.mean()), "std": float(v.std()),
                    "change_vs_base": None if base is None else float(v.mean() - base.mean()),
                })  # fmt: skip
        return pd.DataFrame(rows)

    def to_json(self) -> dict[str, Any]:
        """Layers, per-(model, persona) rows, every text's projection (9 digits: float32 exact)."""
        return {
            "layers": self.layers,
            "rows": self.to_frame().to_dict("records"),
            "values": {
                m: {p: [float(f"{x:.9g}") for x in v.tolist()] for p, v in per.items()}
                for m, per in self.values.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PersonaProjections:
        """The projections written by `to_json`."""
        values = {
            m: {p: np.asarray(v, dtype=np.float32) for p, v in per.items()}
            for m, per in data["values"].items()
        }
        return cls(values, {p: int(layer) for p, layer in data["layers"].items()})

    def _repr_html_(self) -> str:
        return f"<div><b>persona projections</b>{frame_table(self.to_frame())}</div>"


def project_models(
    directions: Mapping[str, PersonaDirection],
    models: Mapping[str, Any],
    tokenizer: Tokenizer,
    texts: Sequence[Text],
) -> PersonaProjections:
    """Project the same texts on each direction in each model (one forward pass per model).

    Args:
        directions: persona → direction (e.g. ``PersonaSet.best()``).
        models: name → model or `Backend`, e.g. ``{"base": ..., "sft": ..., "rl": ...}``.
        tokenizer: the shared tokenizer.
        texts: the same untagged prompts for every model.

    Example:
        >>> import postlens as pl
        >>> from postlens.data.defaults import provider_for
        >>> from postlens.probes.personas.directions import one_vs_rest_directions
        >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
        >>> inputs = provider_for("organism:base").personas(10, 10)
        >>> found = one_vs_rest_directions(pair.base, pair.tokenizer, inputs.sets)
        >>> models = {"base": pair.base, "rl": pair.post}
        >>> frame = project_models(found.best(), models, pair.tokenizer, inputs.prompts).to_frame()
        >>> frame.shape, list(frame.columns)
        ((6, 6), ['model', 'persona', 'layer', 'mean', 'std', 'change_vs_base'])
    """
    layers = sorted({d.layer for d in directions.values()})
    acts = {}
    for model_name, model in models.items():
        for d in directions.values():
            check_compatible(d.provenance, model, what="persona direction", fingerprint=False)
        acts[model_name] = mean_activations(model, tokenizer, texts, layers)
    return projections_of(directions, acts)


def projections_of(
    directions: Mapping[str, PersonaDirection],
    acts: Mapping[str, Mapping[int, Float[Tensor, "text d_model"]]],
) -> PersonaProjections:
    """Projections from per-text mean activations already computed (model → layer → acts).

    Example:
        >>> import postlens as pl
        >>> from postlens.data.defaults import provider_for
        >>> from postlens.probes.personas.directions import one_vs_rest_directions
        >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
        >>> inputs = provider_for("organism:base").personas(10, 10)
        >>> found = one_vs_rest_directions(pair.base, pair.tokenizer, inputs.sets, layers=[2])
        >>> acts = {"base": mean_activations(pair.base, pair.tokenizer, inputs.prompts, [2])}
        >>> projections_of(found.best(), acts).values["base"]["careful"].shape  # one per text
        (10,)
    """
    values = {
        name: {p: (a[d.layer] @ d.vector.float()).numpy() for p, d in directions.items()}
        for name, a in acts.items()
    }
    return PersonaProjections(values, {p: d.layer for p, d in directions.items()})
