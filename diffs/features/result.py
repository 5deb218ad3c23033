"""The result of SAE latent diffing: `FeatureDiff`, its summary, persona flags and JSON.

Definitions (moved, overlap, persona features) are in `postlens.diffs.features.compute`, which computes
it (`diff_features`, `persona_features`).

Example:
    >>> import numpy as np
    >>> diff = FeatureDiff({"base": np.array([0.5, 0.1]), "rl": np.array([0.5, 0.4])},
    ...                    {"base": np.array([1.0, 0.2]), "rl": np.array([1.0, 0.9])}, top_n=1)
    >>> diff.top("rl"), diff.summary().moved
    ([1], {'rl': 1})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from postlens.diffs.features.latents import tagged_contrasts, top_contexts
from postlens.diffs.features.sae import sae_hook
from postlens.errors import ConfigError, PostlensError
from postlens.metrics import auroc, spearman
from postlens.results.protocol import Result, summary_dict

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer


@dataclass(frozen=True)
class PersonaFlags:
    """The persona-flagged latents a child amplified and suppressed (latent ids, ascending)."""

    amplified: list[int]
    suppressed: list[int]


@dataclass(frozen=True)
class FeatureSummary:
    """The latent-diffing answer in numbers (definitions in the module docstring).

    Attributes:
        moved: child → latents moved.
        l1_change: child → Σ |Δ mean activation|.
        moved_more: the child that moved more latents (ties broken by the l1 change).
        flagged: persona-flagged latents.
        flagged_in_top: child → flagged latents among its top-N movers, most moved first.
        persona_flags: child → the flagged latents it amplified and suppressed.
        jaccard_top_n: Jaccard of the first two children's top-N sets (``None``: one child).
        spearman_change: Spearman of their signed changes over all latents.
        flagged_moved_by_both: flagged latents neither of the two left unchanged.
        flagged_same_direction: share of those both moved the same way.
        flagged_in_both_tops: flagged latents in both top-N sets.
    """

    moved: dict[str, int]
    l1_change: dict[str, float]
    moved_more: str
    flagged: int
    flagged_in_top: dict[str, list[int]]
    persona_flags: dict[str, PersonaFlags]
    jaccard_top_n: float | None = None
    spearman_change: float | None = None
    flagged_moved_by_both: int | None = None
    flagged_same_direction: float | None = None
    flagged_in_both_tops: list[int] | None = None


@dataclass
class FeatureDiff(Result[FeatureSummary], kind="features"):
    """Latent statistics of a base and its children under one SAE.

    Attributes:
        freq: model → activation frequency per latent (``"base"`` first).
        mean: model → mean activation per latent.
        top_n: size of the top sets compared.
        flags: latent → persona flags (filled by `flag_personas`).
        contexts: latent → top activating contexts (filled by `add_contexts`).
    """

    freq: dict[str, np.ndarray]
    mean: dict[str, np.ndarray]
    top_n: int = 20
    flags: dict[int, dict[str, Any]] = field(default_factory=dict)
    contexts: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "base" not in self.mean or set(self.mean) != set(self.freq):
            raise ConfigError("freq and mean need the same models, including 'base'")
        if self.top_n < 1:
            raise ConfigError("top_n must be positive")

    @property
    def children(self) -> list[str]:
        return [k for k in self.mean if k != "base"]

    @property
    def n_latents(self) -> int:
        return len(self.mean["base"])

    def change(self, child: str) -> np.ndarray:
        """Mean activation in `child` minus in the base, per latent."""
        return self.mean[child] - self.mean["base"]

    def _scale(self, child: str) -> np.ndarray:
        return np.maximum(np.abs(self.mean["base"]), np.abs(self.mean[child]))

    def top(self, child: str, n: int | None = None) -> list[int]:
        """Latents ranked by |change| in `child`, largest first."""
        order = np.argsort(-np.abs(self.change(child)), kind="stable")
        return [int(i) for i in order[: n or self.top_n]]

    def moved_mask(self, child: str, fraction: float = 0.5, atol: float = 1e-3) -> np.ndarray:
        """Latents `child` moved: |Δ| ≥ fraction · max(|mean_base|, |mean_child|) and ≥ atol."""
        delta = np.abs(self.change(child))
        return (delta >= fraction * self._scale(child)) & (delta >= atol)

    def moved(self, child: str, fraction: float = 0.5, atol: float = 1e-3) -> int:
        """How many latents `child` moved (see `moved_mask`)."""
        return int(self.moved_mask(child, fraction, atol).sum())

    def l1_change(self, child: str) -> float:
        """Σ over latents of |Δ mean activation|: total movement, without a threshold."""
        return float(np.abs(self.change(child)).sum())

    def direction(self, child: str, latent: int) -> str:
        """``amplified``, ``suppressed`` or ``unchanged`` (|Δ| ≤ 1% of the larger mean)."""
        delta = float(self.change(child)[latent])
        if abs(delta) <= 0.01 * float(self._scale(child)[latent]) + 1e-9:
            return "unchanged"
        return "amplified" if delta > 0 else "suppressed"

    def overlap(self, fraction: float = 0.5) -> dict[str, Any]:
        """How alike the first two children's changes are (empty with one child)."""
        if len(self.children) < 2:
            return {}
        a, b = self.children[:2]
        sa, sb = set(self.top(a)), set(self.top(b))
        ca, cb = self.change(a), self.change(b)
        union = sorted(sa | sb)
        ma, mb = self.moved_mask(a, fraction), self.moved_mask(b, fraction)
        by_a = lambda idx: sorted(idx, key=lambda i: -abs(ca[i]))  # noqa: E731
        by_b = lambda idx: sorted(idx, key=lambda i: -abs(cb[i]))  # noqa: E731
        return {
            "children": [a, b],
            "top_n": self.top_n,
            "jaccard_top_n": len(sa & sb) / len(sa | sb),
            "spearman_change": spearman(ca, cb),
            "same_sign_top_union": float(np.mean(np.sign(ca[union]) == np.sign(cb[union]))),
            f"top_only_{a}": by_a(sa - sb),
            f"top_only_{b}": by_b(sb - sa),
            f"moved_only_{a}": by_a(np.nonzero(ma & ~mb)[0].tolist()),
            f"moved_only_{b}": by_b(np.nonzero(mb & ~ma)[0].tolist()),
            "moved_by_both": int((ma & mb).sum()),
        }

    def summary(self, fraction: float = 0.5) -> FeatureSummary:
        """The answer in numbers: which child moved more latents, and did the children move
        the same persona features the same way (first two children)?"""
        kids = self.children
        moved = {c: self.moved(c, fraction) for c in kids}
        l1 = {c: self.l1_change(c) for c in kids}
        in_top = {c: [i for i in self.top(c) if i in self.flags] for c in kids}
        labels = {
            c: PersonaFlags(*(sorted(i for i, f in self.flags.items() if f.get(c) == d)
                              for d in ("amplified", "suppressed")))
            for c in kids
        }  # fmt: skip
        pairwise: dict[str, Any] = {}
        if len(kids) >= 2:
            a, b = kids[:2]
            touched = [i for i, f in self.flags.items() if "unchanged" not in (f.get(a), f.get(b))]
            same = [i for i in touched if self.flags[i][a] == self.flags[i][b]]
            ov = self.overlap(fraction)
            pairwise = {
                "jaccard_top_n": ov["jaccard_top_n"],
                "spearman_change": ov["spearman_change"],
                "flagged_moved_by_both": len(touched),
                "flagged_same_direction": len(same) / len(touched) if touched else None,
                "flagged_in_both_tops": sorted(set(in_top[a]) & set(in_top[b])),
            }
        return FeatureSummary(
            moved, l1, max(kids, key=lambda c: (moved[c], l1[c])), len(self.flags), in_top,
            labels, **pairwise,
        )  # fmt: skip

    def flag_personas(
        self,
        sae: Any,
        directions: Mapping[str, Any] | None = None,
        tagged: Mapping[str, list[Tensor]] | None = None,
        untagged: list[Tensor] | None = None,
        cos_threshold: float = 0.3,
        auroc_threshold: float = 0.8,
    ) -> dict[int, dict[str, Any]]:
        """Flag latents aligned with a persona direction or separating persona-tagged texts.

        Args:
            sae: the SAE (its decoder rows are the latent directions).
            directions: persona → `PersonaDirection` read at the SAE's hook.
            tagged: persona → latent activations of that persona's tagged texts
                (`encode_prompts` with the base).
            untagged: latent activations of contrasting texts; without them each persona is
                compared with the other tagged sets.
            cos_threshold: minimum |decoder cosine|.
            auroc_threshold: minimum AUROC (or maximum 1 − AUROC).

        Raises:
            PostlensError: a direction was measured at another hook than the SAE reads.
        """
        if not 0 < cos_threshold <= 1 or not 0.5 < auroc_threshold <= 1:
            raise ConfigError("need cos_threshold in (0, 1] and auroc_threshold in (0.5, 1]")
        hook = sae_hook(sae)
        w_dec = torch.nn.functional.normalize(sae.W_dec.detach().float().cpu(), dim=-1)
        for name, direction in (directions or {}).items():
            if direction.provenance.hook != hook:
                raise PostlensError(
                    f"the {name} direction reads {direction.provenance.hook}, the SAE {hook}"
                )
            cos = (w_dec @ direction.vector.float().cpu()).numpy()
            for i in np.nonzero(np.abs(cos) >= cos_threshold)[0]:
                self._flag(int(i), name, {"decoder_cosine": float(cos[i])})
        for name, (pos, neg) in tagged_contrasts(tagged or {}, untagged).items():
            labels = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
            scores = np.r_[pos, neg]
            for i in np.nonzero(scores.std(0) > 0)[0]:
                auc = auroc(scores[:, i], labels)
                if auc is not None and max(auc, 1 - auc) >= auroc_threshold:
                    self._flag(int(i), name, {"tag_auroc": auc})
        return self.flags

    def _flag(self, latent: int, persona: str, evidence: dict[str, float]) -> None:
        entry = self.flags.setdefault(latent, {"personas": {}})
        entry["personas"].setdefault(persona, {}).update(evidence)

        def strength(ev: dict[str, float]) -> float:
            return max(abs(ev.get("decoder_cosine", 0.0)), 2 * abs(ev.get("tag_auroc", 0.5) - 0.5))

        best = max(entry["personas"], key=lambda p: strength(entry["personas"][p]))
        entry["persona"], entry["evidence"] = best, dict(entry["personas"][best])
        for child in self.children:
            delta = float(self.change(child)[latent])
            entry[child] = self.direction(child, latent)
            entry[f"change_{child}"] = delta
            scale = float(self._scale(child)[latent])
            entry[f"relative_change_{child}"] = delta / scale if scale > 0 else 0.0

    def add_contexts(
        self,
        feats: list[Tensor],
        prompts: Sequence[str],
        tokenizer: Tokenizer,
        latents: Sequence[int] | None = None,
        k: int = 5,
    ) -> dict[int, list[dict[str, Any]]]:
        """Top activating contexts of `latents` (default: the flagged ones) in `prompts`."""
        for latent in latents if latents is not None else list(self.flags):
            self.contexts[int(latent)] = top_contexts(feats, prompts, tokenizer, int(latent), k)
        return self.contexts

    def to_frame(self) -> Any:
        """One row per latent: frequency and mean per model, change per child, persona flag."""
        import pandas as pd

        frame = pd.DataFrame({"latent": np.arange(self.n_latents)})
        for model in self.mean:
            frame[f"freq_{model}"] = self.freq[model]
            frame[f"mean_{model}"] = self.mean[model]
        for child in self.children:
            frame[f"change_{child}"] = self.change(child)
            frame[f"moved_{child}"] = self.moved_mask(child)
        frame["persona"] = frame["latent"].map(lambda i: self.flags.get(i, {}).get("persona"))
        return frame

    def _row(self, child: str, latent: int) -> dict[str, Any]:
        flag = self.flags.get(latent, {})
        return {
            "latent": latent,
            "change": float(self.change(child)[latent]),
            "mean_base": float(self.mean["base"][latent]),
            f"mean_{child}": float(self.mean[child][latent]),
            "freq_base": float(self.freq["base"][latent]),
            f"freq_{child}": float(self.freq[child][latent]),
            "persona": flag.get("persona"),
        }

    def to_json(self) -> dict[str, Any]:
        """Per-latent statistics of every model (7 significant digits), flags, contexts, and
        the derived figures (top movers, summary) for readers of the file."""
        return {
            "kind": self.kind,
            "n_latents": self.n_latents,
            "top_n": self.top_n,
            "dtype": str(self.mean["base"].dtype),
            "freq": {m: _floats(v) for m, v in self.freq.items()},
            "mean": {m: _floats(v) for m, v in self.mean.items()},
            "top": {c: [self._row(c, i) for i in self.top(c)] for c in self.children},
            "overlap": self.overlap(),
            "summary": summary_dict(self.summary()),
            "flags": {str(k): v for k, v in self.flags.items()},
            "contexts": {str(k): v for k, v in self.contexts.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureDiff:
        def arrays(key: str) -> dict[str, np.ndarray]:
            dtype = np.dtype(data.get("dtype", "float32"))
            return {m: np.asarray(v, dtype=dtype) for m, v in data[key].items()}

        return cls(
            arrays("freq"), arrays("mean"), int(data["top_n"]),
            {int(k): v for k, v in data.get("flags", {}).items()},
            {int(k): v for k, v in data.get("contexts", {}).items()},
        )  # fmt: skip

    def plot(self) -> Any:
        """Each child's change of mean activation per latent (the top movers stand out)."""
        import plotly.graph_objects as go

        fig = go.Figure()
        for child in self.children:
            fig.add_scatter(y=self.change(child), mode="markers", name=child)
        fig.update_layout(
            title="Change of mean SAE latent activation vs the base",
            xaxis_title="latent", yaxis_title="Δ mean activation", template="plotly_white",
        )  # fmt: skip
        return fig

    def _repr_html_(self) -> str:
        from postlens.viz.html import esc, table

        rows = [
            {"child": c, "moved": self.moved(c), "l1 change": self.l1_change(c),
             "top latents": ", ".join(map(str, self.top(c, 8))),
             "flagged amplified": sum(f.get(c) == "amplified" for f in self.flags.values()),
             "flagged suppressed": sum(f.get(c) == "suppressed" for f in self.flags.values())}
            for c in self.children
        ]  # fmt: skip
        ov = self.overlap()
        note = (
            f"Jaccard top-{self.top_n} {ov['jaccard_top_n']:.2f}, Spearman {ov['spearman_change']}"
            if ov
            else "one child"
        )
        return (
            f"<div><b>SAE latent diffing</b> ({self.n_latents} latents, {len(self.flags)} "
            f"persona-flagged; {esc(note)}){table(rows)}</div>"
        )


def _floats(x: np.ndarray) -> list[float]:
    """Floats that read back to the same array: 9 significant digits are exact for float32."""
    digits = 9 if x.dtype == np.float32 else 17
    return [float(f"{v:.{digits}g}") for v in x.tolist()]
