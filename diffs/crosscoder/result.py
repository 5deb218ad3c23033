"""The result of a crosscoder analysis: every latent's figures, the summary, JSON and the figure.

Per latent (`CrosscoderResult.columns`, one entry per latent; ``c`` a child, ``m`` any model):
``norm_m`` (decoder norm ‖d_j^m‖), ``delta_c`` (relative norm against the base), ``class_c``
(``base-only``, ``shared``, ``child-only``, ``other`` between those, or ``dead``: never fired on
the held-out tokens), ``cos_c`` (cosine of d_j^c and d_j^base; ``cos_a_b`` of two children's
in a three-way crosscoder), ``freq`` (share of tokens
where it fires; one code is shared by all models, so per model what differs is its
contribution ``contrib_m`` = mean f_j · ‖d_j^m‖), ``nu_error_c`` / ``nu_recon_c`` and
``artifact_c`` (Latent Scaling, `postlens.diffs.crosscoder.latent_scaling`, for child-only and base-only
latents), ``persona_c`` / ``persona_cos_c`` (the persona direction closest to d_j^c) and
``fork_lift_c`` (firing rate at the child's fork positions over its rate elsewhere), when those
were asked for. In a three-way crosscoder ``pattern`` names the models a live latent exists in
(decoder norm at least 0.2 of its largest, the ratio at which Δ crosses 0.1 and 0.9).

Example:
    >>> import numpy as np
    >>> cols = {"norm_base": np.array([1.0, 0.0]), "norm_rl": np.array([1.0, 1.0]),
    ...         "delta_rl": np.array([0.5, 1.0]), "class_rl": np.array(["shared", "child-only"]),
    ...         "freq": np.array([0.1, 0.2]), "nu_error_rl": np.array([np.nan, 0.05]),
    ...         "nu_recon_rl": np.array([np.nan, 0.1]), "artifact_rl": np.array([None, False])}
    >>> r = CrosscoderResult(["base", "rl"], "blocks.2.hook_resid_post", CrosscoderConfig(), cols,
    ...                      {"base": 0.9, "rl": 0.8}, {"l0": 3.0, "dead_fraction": 0.0})
    >>> r.summary().counts["rl"].child_only, r.summary().child_only_scaling["rl"].n_genuine
    (1, 1)
    >>> CrosscoderResult.from_json(r.to_json()).summary() == r.summary()
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from postlens.diffs.crosscoder.model import CrosscoderConfig
from postlens.results.protocol import Result, clean_float

CLASSES = ("base-only", "shared", "child-only", "other", "dead")


@dataclass(frozen=True)
class ClassCounts:
    """Latents of each class against the base, for one child."""

    base_only: int
    shared: int
    child_only: int
    other: int
    dead: int


@dataclass(frozen=True)
class ScalingSummary:
    """Latent Scaling of one child's child-only (or base-only) latents.

    Attributes:
        n_tested: latents of the class (live ones).
        n_artifacts: of those, ν^ε or ν^r above the config's ``nu_threshold``.
        n_genuine: the others (both ν at or below the threshold).
        median_nu_error: median ν^ε (``None`` without latents).
        median_nu_recon: median ν^r.
    """

    n_tested: int
    n_artifacts: int
    n_genuine: int
    median_nu_error: float | None
    median_nu_recon: float | None


@dataclass(frozen=True)
class CrosscoderSummary:
    """The headline figures of one crosscoder.

    Attributes:
        kind: ``batchtopk`` or ``l1``.
        models: the models read (base first).
        n_latents: dictionary size.
        l0: mean active latents per held-out token (``None`` if not measured).
        dead_fraction: share of latents never active on the held-out tokens.
        variance_explained: per model, 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖² on the held-out tokens.
        counts: per child, latents per class.
        child_only_scaling: per child, Latent Scaling of its child-only latents.
        base_only_scaling: per child, the same for the base-only latents.
        persona_aligned: per child, child-only latents whose decoder is aligned with a persona
            direction (``None``: no persona directions given).
        patterns: three-way: live latents per presence pattern (``"sft"``, ``"sft+rl"``, ...).
        training_seconds: wall time of the training (activations included).
        peak_memory_mib: the process's peak resident memory at the end of training.
        merged_child_only: per child, co-firing latent pairs whose merged direction is
            child-only though neither latent alone is counted so (``None``: not checked).
    """

    kind: str
    models: list[str]
    n_latents: int
    l0: float | None
    dead_fraction: float | None
    variance_explained: dict[str, float | None]
    counts: dict[str, ClassCounts]
    child_only_scaling: dict[str, ScalingSummary]
    base_only_scaling: dict[str, ScalingSummary]
    persona_aligned: dict[str, int] | None = None
    patterns: dict[str, int] = field(default_factory=dict)
    training_seconds: float | None = None
    peak_memory_mib: float | None = None
    merged_child_only: dict[str, int] | None = None


def _median(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return clean_float(float(np.median(x))) if len(x) else None


@dataclass
class CrosscoderResult(Result[CrosscoderSummary], kind="crosscoder"):
    """A trained crosscoder's latents, read on held-out texts (see the module docstring).

    Attributes:
        models: model names, base first.
        hook: the hook read.
        config: the `CrosscoderConfig`.
        columns: per-latent arrays (see the module docstring).
        variance_explained: per model.
        quality: ``l0``, ``dead_fraction``, ``n_tokens``.
        contexts: latent → its top contexts (``tokens``, ``at``: the firing token, ``value``).
        directions: child → {latent: d_j^c} for its child-only latents (to compare children).
        training: the `TrainingLog` as a dict.
        provenance: models (spec, file hashes), hook, data.
        merged: co-firing latent pairs read as one direction each, with the merged direction's
            Δ and class per child (`postlens.diffs.crosscoder.cofiring`); ``None``: not checked
            (a dictionary above its size limit).
        crosscoder: the trained `Crosscoder` (in memory only; ``None`` when read from JSON).
    """

    models: list[str]
    hook: str
    config: CrosscoderConfig
    columns: dict[str, np.ndarray]
    variance_explained: dict[str, float]
    quality: dict[str, float]
    contexts: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    directions: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    merged: list[dict[str, Any]] | None = None
    crosscoder: Any = field(default=None, repr=False, compare=False)

    @property
    def children(self) -> list[str]:
        return self.models[1:]

    @property
    def n_latents(self) -> int:
        return len(next(iter(self.columns.values())))

    def latents(self, child: str, cls: str) -> np.ndarray:
        """The latents of class `cls` (e.g. ``"child-only"``) against the base, for `child`."""
        return np.flatnonzero(self.columns[f"class_{child}"] == cls)

    def _scaling(self, child: str, cls: str) -> ScalingSummary:
        idx = self.latents(child, cls)
        art = self.columns.get(f"artifact_{child}")
        flags = [bool(art[i]) for i in idx if art is not None and art[i] is not None]
        nu_e = self.columns.get(f"nu_error_{child}", np.full(self.n_latents, np.nan))
        nu_r = self.columns.get(f"nu_recon_{child}", np.full(self.n_latents, np.nan))
        return ScalingSummary(len(idx), sum(flags), len(flags) - sum(flags),
                              _median(nu_e[idx].astype(float)), _median(nu_r[idx].astype(float)))  # fmt: skip

    def _counts(self, child: str) -> ClassCounts:
        c = self.columns[f"class_{child}"]
        return ClassCounts(*(int((c == k).sum()) for k in CLASSES))

    def _persona_aligned(self) -> dict[str, int] | None:
        if not any(f"persona_cos_{c}" in self.columns for c in self.children):
            return None
        out = {}
        for c in self.children:
            cos = self.columns[f"persona_cos_{c}"][self.latents(c, "child-only")].astype(float)
            out[c] = int((np.abs(np.nan_to_num(cos)) >= self.config.persona_cos).sum())
        return out

    def summary(self) -> CrosscoderSummary:
        pattern = self.columns.get("pattern")
        patterns = {}
        if pattern is not None:
            values, counts = np.unique(pattern[pattern != ""], return_counts=True)
            patterns = {str(v): int(n) for v, n in zip(values, counts, strict=True)}
        return CrosscoderSummary(
            kind=self.config.kind, models=list(self.models), n_latents=self.n_latents,
            l0=clean_float(self.quality["l0"]), dead_fraction=clean_float(self.quality["dead_fraction"]),
            variance_explained={m: clean_float(v) for m, v in self.variance_explained.items()},
            counts={c: self._counts(c) for c in self.children},
            child_only_scaling={c: self._scaling(c, "child-only") for c in self.children},
            base_only_scaling={c: self._scaling(c, "base-only") for c in self.children},
            persona_aligned=self._persona_aligned(), patterns=patterns,
            training_seconds=self.training.get("seconds"),
            peak_memory_mib=self.training.get("peak_memory_mib"),
            merged_child_only=None if self.merged is None else {
                c: sum(r[f"class_{c}"] == "child-only" for r in self.merged) for c in self.children
            },
        )  # fmt: skip

    def to_frame(self) -> Any:
        """One row per latent."""
        import pandas as pd

        frame = pd.DataFrame({k: list(v) for k, v in self.columns.items()})
        frame.insert(0, "latent", range(self.n_latents))
        return frame

    def to_json(self) -> dict[str, Any]:
        cols = {k: [_plain(v) for v in a] for k, a in self.columns.items()}
        return {
            "kind": self.kind, "models": self.models, "hook": self.hook,
            "config": self.config.to_json(), "columns": cols,
            "variance_explained": self.variance_explained, "quality": self.quality,
            "contexts": {str(k): v for k, v in self.contexts.items()},
            "directions": {c: {str(j): v for j, v in d.items()} for c, d in self.directions.items()},
            "training": self.training, "provenance": self.provenance, "merged": self.merged,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CrosscoderResult:
        cols = {k: _array(k, v) for k, v in data["columns"].items()}
        return cls(
            list(data["models"]), data["hook"], CrosscoderConfig.from_json(data["config"]), cols,
            dict(data["variance_explained"]), dict(data["quality"]),
            {int(k): v for k, v in data.get("contexts", {}).items()},
            {c: {int(j): v for j, v in d.items()} for c, d in data.get("directions", {}).items()},
            dict(data.get("training", {})), dict(data.get("provenance", {})),
            data.get("merged"),
        )  # fmt: skip

    def plot(self) -> Any:
        """Δ histogram per child and the ν scatter of child-only and base-only latents."""
        from postlens.viz.crosscoder_figures import crosscoder_figure

        return crosscoder_figure(self)

    @classmethod
    def plot_children(cls, results: Mapping[str, Result]) -> Any:
        from postlens.viz.crosscoder_figures import delta_histograms

        return delta_histograms(results)


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        return clean_float(v)
    return v


def _array(name: str, values: list[Any]) -> np.ndarray:
    """A column read back from JSON, with the dtype it was built with."""
    if name.startswith(("class_", "persona_")) and not name.startswith("persona_cos_"):
        return np.array(["" if v is None else v for v in values], dtype=object)
    if name == "pattern":
        return np.array(values, dtype=object)
    if name.startswith("artifact_"):
        return np.array(values, dtype=object)
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def compare_children(results: Mapping[str, CrosscoderResult]) -> dict[str, Any]:
    """What each child added that the other did not: child-only latents of two pair crosscoders.

    For each child, its child-only latents (and the genuine ones, by Latent Scaling), and how
    many have a counterpart among the other child's child-only latents (decoder |cosine| at
    least 0.7 in the child's space).

    Example:
        >>> d = {"a": {0: [1.0, 0.0]}, "b": {3: [0.9, 0.1], 4: [0.0, 1.0]}}
        >>> r = {c: CrosscoderResult(["base", c], "h", CrosscoderConfig(),
        ...      {f"class_{c}": np.array(["child-only"] * 5)}, {}, {"l0": 1, "dead_fraction": 0},
        ...      directions={c: d[c]}) for c in d}
        >>> compare_children(r)["matched"]
        {'a': 1, 'b': 1}
    """
    names = list(results)[:2]
    out: dict[str, Any] = {"children": names, "child_only": {}, "genuine": {}, "matched": {}}
    for c, other in zip(names, names[::-1], strict=True):
        r = results[c]
        s = r._scaling(c, "child-only")
        out["child_only"][c], out["genuine"][c] = int(len(r.latents(c, "child-only"))), s.n_genuine
        mine = np.array(list(r.directions.get(c, {}).values()), dtype=float)
        theirs = np.array(list(results[other].directions.get(other, {}).values()), dtype=float)
        if len(mine) and len(theirs):
            mine = mine / np.linalg.norm(mine, axis=1, keepdims=True).clip(1e-12)
            theirs = theirs / np.linalg.norm(theirs, axis=1, keepdims=True).clip(1e-12)
            out["matched"][c] = int((np.abs(mine @ theirs.T).max(1) >= 0.7).sum())
        else:
            out["matched"][c] = 0
    return out
