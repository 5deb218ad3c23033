"""The result of an activation-shift run (`postlens.diffs.activations.compute`): per-layer figures.

Example:
    >>> r = ActivationResult("b", "p", [LayerShift(0, 1.0, 0.0, 0.0, None)], 0.0, 10)
    >>> r.lens_positions, r.patching, ActivationResult.from_json(r.to_json()) == r
    (10, 'exact', True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from postlens.results.protocol import Result, summary_dict

COS_BINS = np.linspace(-1.0, 1.0, 41)
REL_BINS = np.linspace(0.0, 2.0, 41)


@dataclass
class LayerShift:
    """One layer's figures (``logit_lens_kl`` is ``None`` for a layer the lens skipped).

    ``patch_first_order`` is attribution patching's α_ℓ = −Σ⟨∂M/∂h_ℓ, Δh_ℓ⟩ / Σ J, the
    first-order distance the patch moves the base along base→post in logit space
    (`postlens.diffs.activations.attribution`), ``None`` under exact patching.
    """

    layer: int
    cosine_mean: float
    rel_norm_mean: float
    logit_lens_kl: float | None
    patch_recovered: float | None
    patch_first_order: float | None = None
    by_type: dict[str, dict[str, float]] = field(default_factory=dict)
    cosine_hist: list[int] = field(default_factory=list)
    rel_norm_hist: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ActivationSummary:
    """The headline figures of an activation-shift run.

    Attributes:
        n_positions: token positions accumulated.
        n_layers: blocks.
        output_kl: mean KL(post‖base) of the output distributions (nats).
        parting_layer: the first layer whose patching recovers at least half the output KL.
        last_cosine: mean cosine(h_base, h_post) after the last block.
        last_rel_norm: mean ‖h_post − h_base‖/‖h_base‖ after the last block.
        n_excluded: positions left out: ids only one model has (`postlens.models.compat`).
        patching: how ``patch_recovered`` was computed: attribution, exact or none.
        lens_positions: positions the logit-lens KL is averaged over (a sample of them).
    """

    n_positions: int
    n_layers: int
    output_kl: float
    parting_layer: int | None
    last_cosine: float
    last_rel_norm: float
    n_excluded: int = 0
    patching: str = "exact"
    lens_positions: int = 0


@dataclass
class ActivationResult(Result[ActivationSummary], kind="activations"):
    """Per-layer activation shifts of a pair.

    Attributes:
        base: base spec.
        post: post-trained spec.
        layers: one entry per block.
        output_kl: mean KL(post‖base) of the output distributions over the positions used.
        n_positions: positions accumulated.
        excluded: positions left out (ids only one model has).
        patching: how ``patch_recovered`` was computed (``ActivationConfig.patching``).
        lens_positions: positions the logit-lens KL is averaged over (``None``: all of them,
            as in results saved before the lens was sampled).
    """

    base: str
    post: str
    layers: list[LayerShift]
    output_kl: float
    n_positions: int
    excluded: int = 0
    patching: str = "exact"
    lens_positions: int | None = None

    def __post_init__(self) -> None:
        if self.lens_positions is None:
            self.lens_positions = self.n_positions

    def parting_layer(self, threshold: float = 0.5) -> int | None:
        """The first layer whose patching recovers at least `threshold` of the output KL."""
        for layer in self.layers:
            if layer.patch_recovered is not None and layer.patch_recovered >= threshold:
                return layer.layer
        return None

    def summary(self) -> ActivationSummary:
        last = self.layers[-1]
        return ActivationSummary(
            self.n_positions, len(self.layers), self.output_kl, self.parting_layer(),
            last.cosine_mean, last.rel_norm_mean, self.excluded, self.patching,
            int(self.lens_positions or 0),
        )  # fmt: skip

    def to_frame(self) -> Any:
        import pandas as pd

        cols = ("layer", "cosine_mean", "rel_norm_mean", "logit_lens_kl", "patch_recovered")
        return pd.DataFrame([{c: getattr(x, c) for c in cols} for x in self.layers])

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "base": self.base,
            "post": self.post,
            "summary": summary_dict(self.summary()),
            "output_kl": self.output_kl,
            "n_positions": self.n_positions,
            "excluded": self.excluded,
            "patching": self.patching,
            "lens_positions": self.lens_positions,
            "parting_layer": self.parting_layer(),
            "cosine_bins": COS_BINS.tolist(),
            "rel_norm_bins": REL_BINS.tolist(),
            "layers": [vars(x) for x in self.layers],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ActivationResult:
        layers = [LayerShift(**x) for x in data["layers"]]
        return cls(
            data["base"], data["post"], layers, data["output_kl"], data["n_positions"],
            data.get("excluded", 0), data.get("patching", "exact"), data.get("lens_positions"),
        )  # fmt: skip

    def plot(self) -> Any:
        return self.plot_children({self.post or "post": self})

    @classmethod
    def plot_children(cls, results: Mapping[str, Result]) -> Any:
        """Per-layer cosine, relative norm, logit-lens KL and patching recovery, per child."""
        from postlens.viz import figures

        return figures.layer_profile(results)

    def _repr_html_(self) -> str:
        from postlens.viz.html import esc, table

        head = (
            f"<b>activation shifts {esc(self.base)} → {esc(self.post)}</b>: output KL "
            f"{self.output_kl:.4g} over {self.n_positions} positions; logit lens at "
            f"{self.lens_positions} of them; patching: {esc(self.patching)}"
        )
        return f"<div>{head}{table(self.to_frame().to_dict('records'))}</div>"
