"""Persona directions (persona vectors, arXiv 2507.21509): the mean-difference vector of a trait, per layer.

From two text sets (trait-eliciting vs opposite), or from several persona-tagged sets (each one
against the rest), the direction at layer ℓ is mean(h⁺) − mean(h⁻) of the residual stream after
block ℓ (``blocks.ℓ.hook_resid_post``), where each text contributes the average of its tokens.
A text given as a ``(prompt, response)`` pair contributes the average over its *response* tokens
only, as in Anthropic's persona vectors (arXiv 2507.21509), where the trait lives in the response
the eliciting prompt produced; a plain string contributes all of its tokens.

The direction uses every text, as persona_vectors computes it, so it does not depend on any
random split. Quality at ℓ (ours): the AUROC of the projection on held-out texts (a seeded
split), read along the same mean difference fitted on the remaining texts only (so the score
never sees its test texts), with ties between layers broken by the held-out d' (difference of
mean projections over their pooled standard deviation). The best layer is the one with the
highest (AUROC, d').

The projection of any model's activations on a direction monitors the persona, e.g. in base, SFT
and RL children on the same untagged prompts (`project_models`), or during training
(`PersonaMonitor`, a `postlens.probes.training.monitor.Monitor`), both in
`postlens.probes.personas.projections`. Directions save and load with provenance
(`postlens.probes.provenance`).

Example (the organism's persona sets: the same questions under each persona's tag):
    >>> import postlens as pl
    >>> from postlens.data.defaults import provider_for
    >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
    >>> inputs = provider_for("organism:base").personas(10, 10)
    >>> from postlens.probes.personas.projections import project_models
    >>> sets = inputs.sets  # persona -> (tag, question) pairs: only the question is averaged
    >>> sorted(sets), sets["careful"][0]
    (['careful', 'hasty', 'sloppy'], ('<careful>', ' Q: 164+63=?\\n'))
    >>> found = one_vs_rest_directions(pair.base, pair.tokenizer, sets)
    >>> found.best()["careful"].provenance.layer, found.best()["hasty"].auroc
    (2, 1.0)
    >>> models = {"base": pair.base, "rl": pair.post}
    >>> projections = project_models(found.best(), models, pair.tokenizer, inputs.prompts)
    >>> len(projections.to_frame())  # one row per (model, persona)
    6
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from postlens.errors import ConfigError
from postlens.metrics import auroc
from postlens.probes.personas.texts import (  # noqa: F401  (re-exported: the directions' inputs)
    PersonaInputs,
    Text,
    frame_table,
    full_text,
    mean_activations,
)
from postlens.probes.provenance import (
    Provenance,
    check_compatible,
    load_artifact,
    save_artifact,
    unwrap_model,
)

if TYPE_CHECKING:
    from postlens.backends.base import ModelLike
    from postlens.models.types import Model, Tokenizer


@dataclass
class PersonaDirection:
    """A unit direction in the residual stream after one layer, with provenance.

    Attributes:
        name: the persona.
        vector: unit vector, ``[d_model]``.
        provenance: model, layer and hook it was measured on.
        auroc: held-out AUROC of the projection (``None`` when not measured).
        norm: norm of the raw mean difference.
        separation: held-out d' of the projection (``None`` when undefined).
    """

    name: str
    vector: Float[Tensor, " d_model"]
    provenance: Provenance
    auroc: float | None = None
    norm: float = 0.0
    separation: float | None = None

    @property
    def layer(self) -> int:
        return self.provenance.layer

    def project(
        self,
        model: ModelLike,
        tokenizer: Tokenizer | None,
        texts: Sequence[Text],
        fingerprint: bool = False,
    ) -> Float[np.ndarray, " n"]:
        """Each text's mean projection on the (unit) direction.

        Any model of the same shape is accepted (projecting a child is the point); with
        ``fingerprint=True`` a model other than the one measured on is also warned about.
        """
        check_compatible(self.provenance, model, what="persona direction", fingerprint=fingerprint)
        acts = mean_activations(model, tokenizer, texts, [self.layer])[self.layer]
        return (acts @ self.vector.float()).numpy()

    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (atomically)."""
        config = {
            "kind": "persona_direction",
            "name": self.name,
            "auroc": self.auroc,
            "norm": self.norm,
            "separation": self.separation,
            "provenance": asdict(self.provenance),
        }
        return save_artifact(path, config, {"vector": self.vector})

    @classmethod
    def load(cls, path: str | Path) -> PersonaDirection:
        """Read a direction written by `save`."""
        config, tensors = load_artifact(path)
        return cls(
            config["name"],
            tensors["vector"],
            Provenance(**config["provenance"]),
            config.get("auroc"),
            config.get("norm", 0.0),
            config.get("separation"),
        )

    def row(self) -> dict[str, Any]:
        return {
            "persona": self.name,
            "layer": self.layer,
            "auroc": self.auroc,
            "separation": self.separation,
            "norm": self.norm,
        }


@dataclass
class PersonaDirections:
    """One direction per layer for one persona, with its held-out separation."""

    name: str
    directions: list[PersonaDirection]

    def at(self, layer: int) -> PersonaDirection:
        """The direction at `layer`."""
        for d in self.directions:
            if d.layer == layer:
                return d
        raise KeyError(f"no {self.name} direction at layer {layer}")

    @property
    def best(self) -> PersonaDirection:
        """The layer whose direction separates held-out texts best: highest (AUROC, d')."""
        return max(self.directions, key=lambda d: (d.auroc or 0.0, d.separation or 0.0))

    def to_frame(self) -> Any:
        import pandas as pd

        best = self.best.layer
        return pd.DataFrame([{**d.row(), "best": d.layer == best} for d in self.directions])

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "best_layer": self.best.layer,
            "layers": self.to_frame().to_dict("records"),
        }

    def _repr_html_(self) -> str:
        return (
            f"<div><b>persona {html.escape(self.name)}</b>, best layer {self.best.layer}"
            f"{frame_table(self.to_frame())}</div>"
        )


@dataclass
class PersonaSet:
    """Directions of several personas (one-vs-rest), each with its layers."""

    personas: dict[str, PersonaDirections]

    def __getitem__(self, name: str) -> PersonaDirections:
        return self.personas[name]

    def best(self) -> dict[str, PersonaDirection]:
        """Persona → its direction at its best layer."""
        return {name: p.best for name, p in self.personas.items()}

    def at(self, layer: int) -> dict[str, PersonaDirection]:
        """Persona → its direction at `layer` (e.g. the layer an SAE reads)."""
        return {name: p.at(layer) for name, p in self.personas.items()}

    def cosines(self, layer: int) -> dict[str, dict[str, float]]:
        """Cosine similarity between the personas' directions at `layer`."""
        vecs = {n: d.vector.float() for n, d in self.at(layer).items()}
        return {a: {b: float(va @ vb) for b, vb in vecs.items()} for a, va in vecs.items()}

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.concat([p.to_frame() for p in self.personas.values()], ignore_index=True)

    def to_json(self) -> dict[str, Any]:
        return {
            "best_layers": {n: d.layer for n, d in self.best().items()},
            "personas": {n: p.to_json() for n, p in self.personas.items()},
        }

    def _repr_html_(self) -> str:
        best = ", ".join(f"{html.escape(n)}: {d.layer}" for n, d in self.best().items())
        return f"<div><b>persona directions</b> (best layers {best}){frame_table(self.to_frame())}</div>"


def _split(n: int, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    order = rng.permutation(n)
    n_test = max(1, int(round(test_fraction * n)))
    return order[n_test:], order[:n_test]


def _separation(pos: np.ndarray, neg: np.ndarray) -> float | None:
    pooled = np.sqrt((pos.var() + neg.var()) / 2)
    return float((pos.mean() - neg.mean()) / pooled) if pooled > 1e-12 else None


def _fit(
    name: str,
    model: ModelLike,
    pos: dict[int, Tensor],
    negs: list[dict[int, Tensor]],
    test_fraction: float,
    rng: np.random.Generator,
) -> PersonaDirections:
    """Directions from activations: positives vs the balanced mean of the negative sets.

    The direction is the mean difference over *every* text (persona vectors' definition, so
    it does not move with the split's seed); the held-out split serves only the separation
    score, read along a direction fitted without the held-out texts.
    """
    pos_split = _split(len(next(iter(pos.values()))), test_fraction, rng)
    neg_splits = [_split(len(next(iter(n.values()))), test_fraction, rng) for n in negs]
    out = []
    for layer, acts in pos.items():
        diff = _mean_difference(acts, [n[layer] for n in negs])
        unit = diff / diff.norm().clamp_min(1e-12)
        fitted = _mean_difference(
            acts[pos_split[0]], [n[layer][s[0]] for n, s in zip(negs, neg_splits, strict=True)]
        )
        probe = fitted / fitted.norm().clamp_min(1e-12)
        p_test = (acts[pos_split[1]] @ probe).numpy()
        n_test = np.concatenate(
            [(n[layer][s[1]] @ probe).numpy() for n, s in zip(negs, neg_splits, strict=True)]
        )
        labels = np.r_[np.ones(len(p_test), bool), np.zeros(len(n_test), bool)]
        quality = auroc(np.r_[p_test, n_test], labels)
        out.append(
            PersonaDirection(
                name, unit, Provenance.of(model, layer), quality, float(diff.norm()),
                _separation(p_test, n_test),
            )
        )  # fmt: skip
    return PersonaDirections(name, out)


def _mean_difference(pos: Tensor, negs: list[Tensor]) -> Tensor:
    """mean(pos) − the mean of the negative sets' means (each set weighs the same, so a large
    "rest" set does not dominate)."""
    return pos.mean(0) - torch.stack([n.mean(0) for n in negs]).mean(0)


def _check_sets(sets: Mapping[str, Sequence[Text]], test_fraction: float) -> None:
    if not 0 < test_fraction < 1:
        raise ConfigError("test_fraction must be in (0, 1)")
    for name, texts in sets.items():
        if len(texts) < 2:
            raise ConfigError(f"need at least two texts in each set ({name!r} has {len(texts)})")


def persona_directions(
    model: ModelLike,
    tokenizer: Tokenizer,
    positive: Sequence[Text],
    negative: Sequence[Text],
    name: str = "persona",
    layers: Sequence[int] | None = None,
    test_fraction: float = 0.3,
    seed: int = 0,
) -> PersonaDirections:
    """Mean-difference directions per layer, scored by projection AUROC on held-out texts.

    Args:
        model: a Hugging Face causal LM or a `Backend` (usually the base).
        tokenizer: its tokenizer.
        positive: trait-eliciting texts (or ``(prompt, response)`` pairs).
        negative: opposite texts.
        name: the persona's name.
        layers: blocks to measure (default: all).
        test_fraction: share of each set held out for the AUROC.
        seed: seed of the split.

    Example:
        >>> import postlens as pl
        >>> from postlens.data.defaults import provider_for
        >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
        >>> inputs = provider_for("organism:base").personas(10, 10)
        >>> careful, hasty = inputs.sets["careful"], inputs.sets["hasty"]
        >>> found = persona_directions(pair.base, pair.tokenizer, careful, hasty, name="careful")
        >>> len(found.directions), found.best.layer, found.best.auroc  # one direction per layer
        (4, 2, 1.0)
    """
    _check_sets({"positive": positive, "negative": negative}, test_fraction)
    layers = _layers(model, layers)
    pos = mean_activations(model, tokenizer, positive, layers)
    neg = mean_activations(model, tokenizer, negative, layers)
    return _fit(name, model, pos, [neg], test_fraction, np.random.default_rng(seed))


def one_vs_rest_directions(
    model: ModelLike,
    tokenizer: Tokenizer,
    sets: Mapping[str, Sequence[Text]],
    layers: Sequence[int] | None = None,
    test_fraction: float = 0.3,
    seed: int = 0,
) -> PersonaSet:
    """For each persona-tagged set, the direction of that persona against the others.

    The "rest" mean is the average of the other sets' means. Activations are computed once per
    set. Arguments as in `persona_directions`; `sets` maps persona → texts (at least two sets).

    Example:
        >>> import postlens as pl
        >>> from postlens.data.defaults import provider_for
        >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
        >>> inputs = provider_for("organism:base").personas(10, 10)
        >>> found = one_vs_rest_directions(pair.base, pair.tokenizer, inputs.sets)
        >>> {name: d.vector.shape for name, d in found.best().items()}
        {'careful': torch.Size([128]), 'sloppy': torch.Size([128]), 'hasty': torch.Size([128])}
    """
    if len(sets) < 2:
        raise ConfigError("one-vs-rest needs at least two persona sets")
    _check_sets(sets, test_fraction)
    layers = _layers(model, layers)
    acts = {n: mean_activations(model, tokenizer, texts, layers) for n, texts in sets.items()}
    found = {
        name: _fit(
            name, model, acts[name], [a for o, a in acts.items() if o != name], test_fraction,
            np.random.default_rng(seed),
        )
        for name in sets
    }  # fmt: skip
    return PersonaSet(found)


def _layers(model: ModelLike, layers: Sequence[int] | None) -> list[int]:
    n_layers = unwrap_model(model).config.num_hidden_layers
    layers = sorted(set(layers if layers is not None else range(n_layers)))
    if not layers or layers[0] < 0 or layers[-1] >= n_layers:
        raise ConfigError(f"layers must be within 0..{n_layers - 1}")
    return layers


def shift_direction(
    base_model: Model, post_model: Model, tokenizer: Tokenizer, texts: Sequence[Text], layer: int
) -> tuple[Float[Tensor, " d_model"], float]:
    """What post-training added at `layer` on these texts: mean(h_post) − mean(h_base).

    Returned as a unit vector and its norm; its cosine with persona directions says which
    persona moved.

    Example:
        >>> import postlens as pl
        >>> from postlens.data.defaults import provider_for
        >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
        >>> inputs = provider_for("organism:base").personas(10, 10)
        >>> unit, norm = shift_direction(pair.base, pair.post, pair.tokenizer, inputs.prompts, layer=2)
        >>> unit.shape, round(float(unit.norm()), 4), norm > 0
        (torch.Size([128]), 1.0, True)
    """
    hb = mean_activations(base_model, tokenizer, texts, [layer])[layer]
    hp = mean_activations(post_model, tokenizer, texts, [layer])[layer]
    return mean_shift(hb, hp)


def mean_shift(
    base_acts: Float[Tensor, "n d_model"], post_acts: Float[Tensor, "n d_model"]
) -> tuple[Float[Tensor, " d_model"], float]:
    """The mean of post − base over the same texts, as a unit vector and its norm.

    The one definition of a child's activation shift: `shift_direction` and the persona
    analysis (`postlens.diffs.personas.analysis`, from activations it already has) both use it.

    Example:
        >>> unit, norm = mean_shift(torch.zeros(2, 3), torch.tensor([[3.0, 0, 4], [3, 0, 4]]))
        >>> unit.tolist(), norm
        ([0.6000000238418579, 0.0, 0.800000011920929], 5.0)
    """
    diff = (post_acts.float() - base_acts.float()).mean(0)
    return diff / diff.norm().clamp_min(1e-12), float(diff.norm())
