"""The result of comparing two checkpoints' weights: per tensor, grouped, and summarised.

`postlens.diffs.weights.compare` computes them (`compare_weights`); this module holds what it returns, so
the comparison's streaming code and the result's views live apart.

Example:
    >>> d = TensorDiff("w", 0, "attn_q", (2, 2), 4, 0.5, 1.0, 0.25, 0.25, 0.25, 2.0, 1.0)
    >>> WeightDiff("a", "b", [d]).grouped("module")[0]["rel_norm"]
    0.5
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from postlens.errors import ConfigError
from postlens.results.protocol import Result

#: Relative resolution of each storage dtype: 2^-(mantissa bits), the spacing of its numbers
#: at 1 (an entry w moves by at least about this times |w|).
STEPS = {"bfloat16": 2.0**-8, "float16": 2.0**-11, "float32": 2.0**-24, "float64": 2.0**-53}


@dataclass(frozen=True)
class WeightSummary:
    """Global figures of one child's update, over all compared parameters together.

    Attributes:
        rel_norm: ‖Δθ‖ / ‖θ_base‖ over every compared parameter at once.
        frac_changed_exact: share of entries that changed at all.
        frac_changed_tol: share of entries with |Δ| > atol.
        update_sparsity_tol: 1 − frac_changed_tol (the papers' update sparsity).
        n_params: parameters compared.
        n_tensors: tensors compared.
        n_nonfinite: NaN or ±inf entries in either checkpoint (left out of every figure).
        bytes_read: bytes read from both checkpoints.
        seconds: wall time of the comparison.
        atol: the tolerance used.
        storage: the stored dtypes compared, ``"base → post"`` (e.g. ``"bfloat16 → bfloat16"``;
            ``"mixed"`` on a side whose tensors differ).
    """

    rel_norm: float
    frac_changed_exact: float
    frac_changed_tol: float
    update_sparsity_tol: float
    n_params: int
    n_tensors: int
    n_nonfinite: int
    bytes_read: int
    seconds: float
    atol: float
    storage: str = ""

    @property
    def step(self) -> float | None:
        """The post storage's relative resolution: a stored entry w can move by no less than
        about ``step · |w|`` (one step of its dtype; 2⁻⁸ in bfloat16), so a 16-bit child's
        "unchanged" share also counts every update smaller than that, rounded away.
        ``None`` for an unknown or mixed dtype.

        Example:
            >>> WeightSummary(0.1, 0.5, 0.5, 0.5, 10, 1, 0, 0, 0.0, 0.0, "float32 → bfloat16").step
            0.00390625
        """
        return STEPS.get(self.storage.rpartition("→ ")[2])

    @property
    def resolution_note(self) -> str:
        """For a 16-bit child, its resolution, to say beside its "unchanged" share (rounding
        hides updates smaller than one step); ``""`` otherwise.

        Example:
            >>> s = WeightSummary(0.1, 0.5, 0.5, 0.5, 10, 1, 0, 0, 0.0, 0.0, "bfloat16 → bfloat16")
            >>> s.resolution_note
            'bfloat16: one step is 0.39% of |w|; smaller updates round away'
        """
        if self.step is None or self.step < 2**-20:
            return ""
        dtype = self.storage.rpartition("→ ")[2]
        return f"{dtype}: one step is {self.step:.2%} of |w|; smaller updates round away"


@dataclass
class TensorDiff:
    """The update of one tensor (``rank_bound``: r of a LoRA update, rank(ΔW) ≤ r; else None)."""

    name: str
    layer: int | None
    module: str
    shape: tuple[int, ...]
    numel: int
    rel_norm: float
    max_abs: float
    mean_abs: float
    frac_changed_exact: float
    frac_changed_tol: float
    norm_base: float = 0.0
    norm_diff: float = 0.0
    nan_count: int = 0
    inf_count: int = 0
    effective_rank: float | None = None
    entropy_rank: float | None = None
    subspace_overlap: float | None = None
    rank_bound: int | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["shape"] = list(self.shape)
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in out.items()
        }


@dataclass
class WeightDiff(Result[WeightSummary], kind="weight_diff"):
    """The comparison of two checkpoints.

    Attributes:
        base: base spec.
        post: post-trained spec.
        tensors: one entry per tensor compared.
        missing_in_post: tensors only the base has.
        missing_in_base: tensors only the post model has.
        shape_mismatches: ``name: base shape vs post shape``, and tensors stored as integers on
            one side and real numbers on the other (quantized codes; not compared).
        totals: the global figures (`summary()`).
        odd_dtypes: ``name: base dtype → post dtype`` for the tensors compared whose stored
            dtypes differ from most of the checkpoint's (say, one float16 tensor in a float32
            file): their changed shares are counted at their own resolution.
    """

    base: str
    post: str
    tensors: list[TensorDiff]
    missing_in_post: list[str] = field(default_factory=list)
    missing_in_base: list[str] = field(default_factory=list)
    shape_mismatches: list[str] = field(default_factory=list)
    totals: WeightSummary | None = None
    odd_dtypes: list[str] = field(default_factory=list)

    def summary(self) -> WeightSummary:
        """Global figures: rel_norm over all parameters together, shares changed, ..."""
        if self.totals is None:
            raise ConfigError(f"{self.base} → {self.post}: no tensor was compared")
        return self.totals

    @property
    def ok(self) -> bool:
        """True when both checkpoints hold the same tensors with the same shapes."""
        return not (self.missing_in_post or self.missing_in_base or self.shape_mismatches)

    def to_frame(self) -> Any:
        """One row per tensor."""
        import pandas as pd

        return pd.DataFrame([t.to_json() for t in self.tensors])

    def grouped(self, key: str) -> list[dict[str, Any]]:
        """Figures per ``"layer"`` or ``"module"`` as plain rows (no pandas: the CLI prints them).

        Each row: the key (``None`` for the tensors outside the layers, last), ``numel``,
        ``max_abs``, ``rel_norm`` of the group as a whole (√(Σ‖ΔW‖² / Σ‖W‖²), not a mean of
        ratios) and the numel-weighted ``frac_changed_exact``, ``frac_changed_tol``,
        ``mean_abs``; sorted by key.
        """
        groups: dict[Any, list[TensorDiff]] = {}
        for t in self.tensors:
            groups.setdefault(getattr(t, key), []).append(t)
        rows = []
        for k in sorted(groups, key=lambda v: (v is None, 0 if v is None else v)):
            ts = groups[k]
            numel = sum(t.numel for t in ts)
            sq_diff, sq_base = sum(t.norm_diff**2 for t in ts), sum(t.norm_base**2 for t in ts)
            rel = (
                math.sqrt(sq_diff / sq_base) if sq_base else (math.nan if not sq_diff else math.inf)
            )
            row = {key: k, "numel": numel, "max_abs": max(t.max_abs for t in ts), "rel_norm": rel}
            for col in ("frac_changed_exact", "frac_changed_tol", "mean_abs"):
                row[col] = sum(getattr(t, col) * t.numel for t in ts) / numel if numel else 0.0
            rows.append(row)
        return rows

    def _grouped(self, key: str) -> Any:
        import pandas as pd

        return pd.DataFrame(self.grouped(key))

    def by_layer(self) -> Any:
        """Figures per layer (``None`` = embeddings, final norm, unembedding)."""
        return self._grouped("layer")

    def by_module(self) -> Any:
        """Figures per module kind (attention q/k/v/o, MLP, norms, embeddings...)."""
        return self._grouped("module")

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "post": self.post,
            "tensors": [t.to_json() for t in self.tensors],
            "missing_in_post": self.missing_in_post,
            "missing_in_base": self.missing_in_base,
            "shape_mismatches": self.shape_mismatches,
            "summary": asdict(self.totals) if self.totals else None,
            "odd_dtypes": self.odd_dtypes,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WeightDiff:
        tensors = [TensorDiff(**{**t, "shape": tuple(t["shape"])}) for t in data["tensors"]]
        totals = WeightSummary(**data["summary"]) if data.get("summary") else None
        return cls(data["base"], data["post"], tensors, list(data["missing_in_post"]),
                   list(data["missing_in_base"]), list(data["shape_mismatches"]), totals,
                   list(data.get("odd_dtypes", [])))  # fmt: skip

    def plot(self) -> Any:
        """Share of weights changed per layer."""
        from postlens.viz import figures

        return figures.sparsity_by_layer({"post": self})

    def _repr_html_(self) -> str:
        from postlens.viz.html import esc, table

        s = self.summary()
        head = (
            f"<b>{esc(self.base)} → {esc(self.post)}</b>: rel_norm {s.rel_norm:.4g}, "
            f"changed {s.frac_changed_tol:.2%} (|Δ|>{s.atol:g}), {s.n_params:,} params"
        )
        rows = self.by_module().round(5).to_dict("records")
        return f"<div>{head}{table(rows, ['module', 'numel', 'rel_norm', 'frac_changed_tol', 'max_abs'])}</div>"
