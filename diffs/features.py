"""SAE latent diffing: which features of the base did each child amplify or suppress (BRIEF §5).

One SAE (trained on the base) encodes the residual stream of the base and of each child on the
same untagged prompts. Per latent and model: activation frequency (share of tokens where it is
> 0) and mean activation over all tokens; per child: the change of the mean activation, and a
ranking of latents by |change| (OpenAI's persona-features recipe, arXiv 2506.19823).

Definitions (ours, where no paper fixes one):

* **moved**: |Δ| ≥ ``fraction`` · max(|mean_base|, |mean_child|) and |Δ| ≥ ``atol`` (defaults
  0.5 and 1e-3): the latent lost or gained at least half of its activation; the count of moved
  latents and Σ|Δ| ("l1 change", threshold-free) say which child moved more.
* **overlap** of two children: Jaccard of their top-N sets, Spearman correlation of their
  signed changes over all latents, and the share of the union of the top-N sets that both
  moved in the same direction; latents moved by one child and not the other are listed.
* **persona features**: latents whose decoder direction has |cosine| ≥ ``cos_threshold`` with a
  persona direction, or whose mean activation over a persona-tagged text separates it from the
  other texts with AUROC ≥ ``auroc_threshold`` (or ≤ 1 − it). Each is marked amplified,
  suppressed or unchanged (|Δ| ≤ 1% of the larger mean) by each child.

Example:
    >>> diff = persona_features(sae, {"sft": pairs["sft"], "rl": pairs["rl"]}, untagged,
    ...                         directions=found.at(2), tagged=docs, corpus=corpus)  # doctest: +SKIP
    >>> diff.overlap()["jaccard_top_n"], diff.moved("sft"), diff.moved("rl")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from postlens.diffs.sae import sae_hook
from postlens.diffs.sae_latents import (  # noqa: F401  (encode_prompts, top_contexts re-exported)
    encode_prompts,
    encode_texts,
    latent_stats,
    spearman,
    tagged_contrasts,
    top_contexts,
)
from postlens.errors import PostlensError
from postlens.probes.metrics import _auroc
from postlens.probes.personas import Text, full_text


@dataclass
class FeatureDiff:
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
            raise ValueError("freq and mean need the same models, including 'base'")
        if self.top_n < 1:
            raise ValueError("top_n must be positive")

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

    def summary(self, fraction: float = 0.5) -> dict[str, Any]:
        """The answer in numbers: which child moved more latents, and did the children move
        the same persona features the same way (first two children)?

        Example:
            >>> diff.summary()["moved_more"]  # doctest: +SKIP
            'sft'
        """
        moved = {c: self.moved(c, fraction) for c in self.children}
        l1 = {c: self.l1_change(c) for c in self.children}
        labels = {
            c: {
                d: sorted(i for i, f in self.flags.items() if f.get(c) == d)
                for d in ("amplified", "suppressed")
            }
            for c in self.children
        }
        out: dict[str, Any] = {
            "moved": moved,
            "l1_change": l1,
            "moved_more": max(self.children, key=lambda c: (moved[c], l1[c])),
            "flagged": len(self.flags),
            "flagged_in_top": {
                c: [i for i in self.top(c) if i in self.flags] for c in self.children
            },
            "persona_flags": labels,
        }
        if len(self.children) >= 2:
            a, b = self.children[:2]
            touched = [i for i, f in self.flags.items() if "unchanged" not in (f.get(a), f.get(b))]
            same = [i for i in touched if self.flags[i][a] == self.flags[i][b]]
            ov = self.overlap(fraction)
            out |= {
                "jaccard_top_n": ov["jaccard_top_n"],
                "spearman_change": ov["spearman_change"],
                "flagged_moved_by_both": len(touched),
                "flagged_same_direction": len(same) / len(touched) if touched else None,
                "flagged_in_both_tops": sorted(
                    set(out["flagged_in_top"][a]) & set(out["flagged_in_top"][b])
                ),
            }
        return out

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
            raise ValueError("need cos_threshold in (0, 1] and auroc_threshold in (0.5, 1]")
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
                auc = _auroc(scores[:, i], labels)
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
        tokenizer: Any,
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
        return {
            "n_latents": self.n_latents,
            "top": {c: [self._row(c, i) for i in self.top(c)] for c in self.children},
            "moved": {c: self.moved(c) for c in self.children},
            "l1_change": {c: self.l1_change(c) for c in self.children},
            "overlap": self.overlap(),
            "summary": self.summary(),
            "flags": {str(k): v for k, v in self.flags.items()},
            "contexts": {str(k): v for k, v in self.contexts.items()},
        }

    def _repr_html_(self) -> str:
        import html

        import pandas as pd

        rows = pd.DataFrame(
            [
                {
                    "child": c,
                    "moved": self.moved(c),
                    "l1 change": self.l1_change(c),
                    "top latents": ", ".join(map(str, self.top(c, 8))),
                    "flagged amplified": sum(f.get(c) == "amplified" for f in self.flags.values()),
                    "flagged suppressed": sum(
                        f.get(c) == "suppressed" for f in self.flags.values()
                    ),
                }
                for c in self.children
            ]
        )
        ov = self.overlap()
        summary = (
            f"Jaccard top-{self.top_n} {ov['jaccard_top_n']:.2f}, Spearman {ov['spearman_change']}"
            if ov
            else "one child"
        )
        return (
            f"<div><b>SAE latent diffing</b> ({self.n_latents} latents, {len(self.flags)} "
            f"persona-flagged; {html.escape(summary)}){rows.to_html(index=False, escape=True)}</div>"
        )


def diff_features(
    sae: Any, pairs: Any, prompts: Sequence[Text], top_n: int = 20, batch_size: int = 32
) -> tuple[FeatureDiff, dict[str, list[Tensor]]]:
    """Encode the same prompts with the base and each child.

    Args:
        sae: an SAE trained on the base (checked against the model's width and layers).
        pairs: one `ModelPair` (its child is named ``"post"``) or child name → `ModelPair`
            sharing the base (the first pair's base is used).
        prompts: the same untagged prompts for every model (``(prompt, response)`` pairs
            count their response tokens only; ``("", text)`` leaves out the BOS token).
        top_n: size of the top sets compared.
        batch_size: prompts per forward pass.

    Returns:
        The diff, and each model's per-prompt latent activations (for contexts and flags).

    Example:
        >>> diff, feats = diff_features(sae, {"sft": sft_pair, "rl": rl_pair}, prompts)  # doctest: +SKIP
    """
    pairs = {"post": pairs} if hasattr(pairs, "post") else dict(pairs)
    if not pairs or not prompts:
        raise ValueError("need at least one child and one prompt")
    first = next(iter(pairs.values()))
    feats = {"base": encode_texts(sae, first.base, prompts, batch_size)}
    for child, pair in pairs.items():
        feats[child] = encode_texts(sae, pair.post, prompts, batch_size)
    stats = {k: latent_stats(v) for k, v in feats.items()}
    diff = FeatureDiff(
        {k: s[0] for k, s in stats.items()}, {k: s[1] for k, s in stats.items()}, top_n
    )
    return diff, feats


def persona_features(
    sae: Any,
    pairs: Any,
    prompts: Sequence[Text],
    directions: Mapping[str, Any] | None = None,
    tagged: Mapping[str, Sequence[Text]] | None = None,
    corpus: Sequence[str] | None = None,
    top_n: int = 20,
    cos_threshold: float = 0.3,
    auroc_threshold: float = 0.8,
    n_contexts: int = 5,
) -> FeatureDiff:
    """Latent diffing, persona flags and top contexts in one call.

    Args:
        sae, pairs, prompts, top_n: as in `diff_features`.
        directions: persona → direction at the SAE's hook (e.g. ``PersonaSet.at(layer)``).
        tagged: persona → tagged texts or ``(tag prompt, text)`` pairs (each persona against
            the others, encoded by the base; a pair counts its text's tokens only, so the same
            text under different tags isolates the persona from the content).
        corpus: texts whose top activating contexts are shown (default: `prompts`), for the
            flagged latents and each child's top 10 movers.
        cos_threshold, auroc_threshold: see `FeatureDiff.flag_personas`.
        n_contexts: contexts per latent.

    Example:
        >>> diff = persona_features(sae, pairs, untagged, found.at(2), docs, corpus)  # doctest: +SKIP
    """
    diff, feats = diff_features(sae, pairs, prompts, top_n)
    first = next(iter(pairs.values())) if not hasattr(pairs, "post") else pairs
    tagged_feats = {n: encode_texts(sae, first.base, list(t)) for n, t in (tagged or {}).items()}
    diff.flag_personas(sae, directions, tagged_feats, None, cos_threshold, auroc_threshold)
    if corpus is None:  # contexts are shown on whole texts
        corpus = [full_text(t) for t in prompts]
    corpus_feats = encode_prompts(sae, first.base, corpus)
    latents = set(diff.flags) | {i for c in diff.children for i in diff.top(c, 10)}
    diff.add_contexts(corpus_feats, corpus, first.tokenizer, sorted(latents), n_contexts)
    return diff
