"""Persona directions (BRIEF.md §5): the mean-difference vector of a trait, per layer.

From two prompt sets (trait-eliciting vs opposite; or one persona-tagged set vs the others), the
direction at layer ℓ is mean(h⁺) − mean(h⁻) of the residual stream after block ℓ, averaged over
each prompt's tokens (Anthropic's persona vectors average over response tokens; with prompts only,
all tokens). Its quality at ℓ is the AUROC of the projection on held-out prompts: how well the
direction alone tells the two sets apart. The projection of any model's activations on the
direction monitors the persona, e.g. in base, SFT and RL children on the same untagged prompts.

Example:
    >>> result = persona_directions(model, tokenizer, careful_prompts, other_prompts, name="careful")  # doctest: +SKIP
    >>> direction = result.best  # doctest: +SKIP
    >>> direction.project(rl_model, tokenizer, untagged_prompts).mean()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from postlens.probes.activations import resid_post
from postlens.probes.confidence import _auroc
from postlens.probes.provenance import Provenance, load_artifact, save_artifact


def mean_activations(
    hf_model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    layers: Sequence[int],
    batch_size: int = 32,
) -> dict[int, Float[Tensor, "n d_model"]]:
    """Each prompt's residual stream after each layer, averaged over its tokens."""
    out: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    old_side, tokenizer.padding_side = tokenizer.padding_side, "right"
    try:
        for start in range(0, len(prompts), batch_size):
            enc = tokenizer(
                list(prompts[start : start + batch_size]), return_tensors="pt", padding=True
            )
            acts = resid_post(hf_model, enc["input_ids"], enc["attention_mask"], layers)
            mask = enc["attention_mask"].unsqueeze(-1).float()
            for layer in layers:
                out[layer].append((acts[layer] * mask).sum(1) / mask.sum(1))
    finally:
        tokenizer.padding_side = old_side
    return {layer: torch.cat(v) for layer, v in out.items()}


@dataclass
class PersonaDirection:
    """A unit direction in the residual stream after one layer, with provenance."""

    name: str
    vector: Float[Tensor, " d_model"]
    provenance: Provenance
    auroc: float | None = None
    norm: float = 0.0

    def project(self, hf_model: Any, tokenizer: Any, prompts: Sequence[str]) -> np.ndarray:
        """Mean projection of each prompt's activations on the (unit) direction."""
        self.provenance.check(hf_model, "persona direction")
        layer = self.provenance.layer
        return (
            mean_activations(hf_model, tokenizer, prompts, [layer])[layer] @ self.vector
        ).numpy()

    def save(self, path: str | Path) -> Path:
        config = {
            "kind": "persona_direction",
            "name": self.name,
            "auroc": self.auroc,
            "norm": self.norm,
            "provenance": asdict(self.provenance),
        }
        return save_artifact(path, config, {"vector": self.vector})

    @classmethod
    def load(cls, path: str | Path) -> PersonaDirection:
        config, tensors = load_artifact(path)
        return cls(
            config["name"],
            tensors["vector"],
            Provenance(**config["provenance"]),
            config.get("auroc"),
            config.get("norm", 0.0),
        )


class PersonaMonitor:
    """A `Monitor`: the mean projection of fixed prompts on a persona direction."""

    def __init__(self, direction: PersonaDirection, prompts: Sequence[str]) -> None:
        if not prompts:
            raise ValueError("a monitor needs at least one prompt")
        self.direction, self.prompts, self.name = (
            direction,
            list(prompts),
            f"persona/{direction.name}",
        )

    def read(self, model: Any, tokenizer: Any) -> dict[str, float]:
        return {
            f"{self.name}/projection": float(
                self.direction.project(model, tokenizer, self.prompts).mean()
            )
        }


@dataclass
class PersonaDirections:
    """One direction per layer for one persona, with its held-out separation."""

    name: str
    directions: list[PersonaDirection]

    @property
    def best(self) -> PersonaDirection:
        """The layer whose direction separates held-out prompts best (highest AUROC)."""
        return max(self.directions, key=lambda d: d.auroc or 0.0)

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "persona": self.name,
                    "layer": d.provenance.layer,
                    "auroc": d.auroc,
                    "norm": d.norm,
                }
                for d in self.directions
            ]
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "best_layer": self.best.provenance.layer,
            "layers": self.to_frame().to_dict("records"),
        }

    def _repr_html_(self) -> str:
        from postlens.viz.html import esc, table

        return f"<div><b>persona {esc(self.name)}</b>, best layer {self.best.provenance.layer}{table(self.to_frame().to_dict('records'))}</div>"


def persona_directions(
    hf_model: Any,
    tokenizer: Any,
    positive: Sequence[str],
    negative: Sequence[str],
    name: str = "persona",
    layers: Sequence[int] | None = None,
    test_fraction: float = 0.3,
    seed: int = 0,
) -> PersonaDirections:
    """Mean-difference directions per layer, scored by projection AUROC on held-out prompts."""
    if len(positive) < 2 or len(negative) < 2:
        raise ValueError("need at least two prompts on each side")
    layers = list(layers if layers is not None else range(hf_model.config.num_hidden_layers))
    rng = np.random.default_rng(seed)
    split = {}
    for side, prompts in (("pos", positive), ("neg", negative)):
        order = rng.permutation(len(prompts))
        n_test = max(1, int(round(test_fraction * len(prompts))))
        split[side] = (order[n_test:], order[:n_test])
    acts_pos = mean_activations(hf_model, tokenizer, positive, layers)
    acts_neg = mean_activations(hf_model, tokenizer, negative, layers)
    out = []
    for layer in layers:
        pos, neg = acts_pos[layer], acts_neg[layer]
        diff = pos[split["pos"][0]].mean(0) - neg[split["neg"][0]].mean(0)
        unit = diff / diff.norm().clamp_min(1e-12)
        scores = torch.cat([pos[split["pos"][1]], neg[split["neg"][1]]]) @ unit
        labels = np.r_[np.ones(len(split["pos"][1]), bool), np.zeros(len(split["neg"][1]), bool)]
        out.append(
            PersonaDirection(
                name,
                unit,
                Provenance.of(hf_model, layer),
                _auroc(scores.numpy(), labels),
                float(diff.norm()),
            )
        )
    return PersonaDirections(name, out)


def shift_direction(
    base_model: Any, post_model: Any, tokenizer: Any, prompts: Sequence[str], layer: int
) -> tuple[Float[Tensor, " d_model"], float]:
    """What post-training added at `layer` on these prompts: mean(h_post) − mean(h_base), as a
    unit vector and its norm. Its cosine with persona directions says which persona moved."""
    hb = mean_activations(base_model, tokenizer, prompts, [layer])[layer].mean(0)
    hp = mean_activations(post_model, tokenizer, prompts, [layer])[layer].mean(0)
    diff = hp - hb
    return diff / diff.norm().clamp_min(1e-12), float(diff.norm())
