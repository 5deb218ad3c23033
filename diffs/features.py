"""SAE latent diffing: which features of the base did each child amplify or suppress (BRIEF §5).

One SAE (trained on the base) encodes the residual stream of the base and of each child on the
same untagged prompts. Per latent and model: activation frequency and mean activation; per child:
the change of the mean activation, and a ranking by |change| (OpenAI's persona-features recipe).
The two children's rankings are compared (Jaccard of the top-N sets, Spearman over all latents).
**Persona features** are latents whose decoder direction aligns with a persona direction (cosine
above a threshold) or whose activation alone separates persona-tagged prompts (AUROC); each is
marked amplified or suppressed by each child.

Example:
    >>> diff = diff_features(sae, {"sft": pairs["sft"], "rl": pairs["rl"]}, untagged_prompts)  # doctest: +SKIP
    >>> diff.flag_personas(directions, tagged_prompts, corpus)  # doctest: +SKIP
    >>> diff.to_frame().head()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from postlens.diffs.sae import check_sae
from postlens.probes.confidence import _auroc, _rank


@torch.no_grad()
def encode_prompts(
    sae: Any, backend: Any, prompts: Sequence[str], batch_size: int = 32
) -> list[torch.Tensor]:
    """SAE latent activations of every prompt's tokens: one ``[pos, d_sae]`` tensor per prompt."""
    hook = check_sae(sae, backend.hf_model)
    out = []
    for acts, mask in backend.iter_activations(prompts, hook, batch_size):
        feats = sae.encode(acts.float())
        out.extend(feats[i, : int(m.sum())] for i, m in enumerate(mask))
    return out


def _stats(feats: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    flat = torch.cat(feats)
    return (flat > 0).float().mean(0).numpy(), flat.mean(0).numpy()


@dataclass
class FeatureDiff:
    """Latent statistics of a base and its children under one SAE.

    Attributes:
        freq: model → activation frequency per latent.
        mean: model → mean activation per latent.
        top_n: size of the top sets compared.
        flags: latent → persona flags (filled by `flag_personas`).
    """

    freq: dict[str, np.ndarray]
    mean: dict[str, np.ndarray]
    top_n: int = 20
    flags: dict[int, dict[str, Any]] = field(default_factory=dict)
    contexts: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def children(self) -> list[str]:
        return [k for k in self.mean if k != "base"]

    def change(self, child: str) -> np.ndarray:
        """Mean activation in `child` minus in the base, per latent."""
        return self.mean[child] - self.mean["base"]

    def top(self, child: str, n: int | None = None) -> list[int]:
        """Latents ranked by |change| in `child`, largest first."""
        return [
            int(i)
            for i in np.argsort(-np.abs(self.change(child)), kind="stable")[: n or self.top_n]
        ]

    def overlap(self) -> dict[str, Any]:
        """Jaccard of the children's top-N sets and Spearman of their changes (first two children)."""
        if len(self.children) < 2:
            return {}
        a, b = self.children[:2]
        sa, sb = set(self.top(a)), set(self.top(b))
        ca, cb = self.change(a), self.change(b)
        spearman = (
            float(np.corrcoef(_rank(ca), _rank(cb))[0, 1])
            if ca.std() > 0 and cb.std() > 0
            else None
        )
        return {
            "children": [a, b],
            "jaccard_top_n": len(sa & sb) / len(sa | sb),
            "spearman_change": spearman,
            f"only_{a}": sorted(sa - sb),
            f"only_{b}": sorted(sb - sa),
        }

    def moved(self, child: str, fraction: float = 0.5) -> int:
        """Latents whose |change| exceeds `fraction` of their base mean activation (and is not ~0)."""
        delta = np.abs(self.change(child))
        return int(((delta > fraction * np.abs(self.mean["base"])) & (delta > 1e-3)).sum())

    def to_frame(self) -> Any:
        """One row per latent: frequency and mean per model, change per child, flags."""
        import pandas as pd

        frame = pd.DataFrame({"latent": np.arange(len(self.mean["base"]))})
        for model in self.mean:
            frame[f"freq_{model}"] = self.freq[model]
            frame[f"mean_{model}"] = self.mean[model]
        for child in self.children:
            frame[f"change_{child}"] = self.change(child)
        frame["persona"] = frame["latent"].map(lambda i: self.flags.get(i, {}).get("persona"))
        return frame

    def flag_personas(
        self,
        sae: Any,
        directions: Mapping[str, Any] | None = None,
        tagged: Mapping[str, list[torch.Tensor]] | None = None,
        untagged: list[torch.Tensor] | None = None,
        cos_threshold: float = 0.3,
        auroc_threshold: float = 0.8,
    ) -> dict[int, dict[str, Any]]:
        """Flag latents aligned with a persona direction or separating persona-tagged prompts.

        Args:
            sae: the SAE (its decoder rows are the latent directions).
            directions: persona name → `PersonaDirection` (same layer as the SAE).
            tagged: persona name → latent activations of that persona's tagged prompts.
            untagged: latent activations of contrasting prompts for the AUROC.
        """
        w_dec = torch.nn.functional.normalize(sae.W_dec.detach().float(), dim=-1)
        for name, direction in (directions or {}).items():
            cos = (w_dec @ direction.vector.float()).numpy()
            for i in np.nonzero(np.abs(cos) >= cos_threshold)[0]:
                self._flag(int(i), name, {"decoder_cosine": float(cos[i])})
        if tagged and untagged:
            neg = torch.stack([f.mean(0) for f in untagged]).numpy()
            for name, feats in tagged.items():
                pos = torch.stack([f.mean(0) for f in feats]).numpy()
                labels = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
                scores = np.r_[pos, neg]
                for i in np.nonzero(scores.std(0) > 0)[0]:
                    auc = _auroc(scores[:, i], labels)
                    if auc is not None and auc >= auroc_threshold:
                        self._flag(int(i), name, {"tag_auroc": auc})
        return self.flags

    def _flag(self, latent: int, persona: str, evidence: dict[str, float]) -> None:
        entry = self.flags.setdefault(latent, {"persona": persona, "evidence": {}})
        entry["evidence"].update(evidence)
        for child in self.children:
            delta = float(self.change(child)[latent])
            entry[child] = "amplified" if delta > 0 else "suppressed" if delta < 0 else "unchanged"
            entry[f"change_{child}"] = delta

    def to_json(self) -> dict[str, Any]:
        return {
            "n_latents": int(len(self.mean["base"])),
            "top": {
                c: [
                    {
                        "latent": i,
                        "change": float(self.change(c)[i]),
                        "persona": self.flags.get(i, {}).get("persona"),
                    }
                    for i in self.top(c)
                ]
                for c in self.children
            },
            "moved": {c: self.moved(c) for c in self.children},
            "overlap": self.overlap(),
            "flags": {str(k): v for k, v in self.flags.items()},
            "contexts": {str(k): v for k, v in self.contexts.items()},
        }

    def _repr_html_(self) -> str:
        from postlens.viz.html import table

        rows = [
            {"child": c, "moved": self.moved(c), "top latents": ", ".join(map(str, self.top(c, 8)))}
            for c in self.children
        ]
        return f"<div><b>SAE latent diffing</b>{table(rows)}{table([{'overlap': str(self.overlap())}])}</div>"


def diff_features(
    sae: Any, pairs: Mapping[str, Any], prompts: Sequence[str], top_n: int = 20
) -> tuple[FeatureDiff, dict[str, list[torch.Tensor]]]:
    """Encode the same prompts with the base and each child (`ModelPair`s sharing the base).

    Returns the diff and each model's per-prompt latent activations (for contexts and flags).
    """
    first = next(iter(pairs.values()))
    feats = {"base": encode_prompts(sae, first.base, prompts)}
    for child, pair in pairs.items():
        feats[child] = encode_prompts(sae, pair.post, prompts)
    stats = {k: _stats(v) for k, v in feats.items()}
    return FeatureDiff(
        {k: s[0] for k, s in stats.items()}, {k: s[1] for k, s in stats.items()}, top_n
    ), feats


def top_contexts(
    feats: list[torch.Tensor],
    prompts: Sequence[str],
    tokenizer: Any,
    latent: int,
    k: int = 5,
    width: int = 12,
) -> list[dict[str, Any]]:
    """The `k` token positions where `latent` fires hardest, with the tokens before them."""
    best: list[tuple[float, int, int]] = []
    for p, f in enumerate(feats):
        values = f[:, latent]
        pos = int(values.argmax())
        best.append((float(values[pos]), p, pos))
    out = []
    for value, p, pos in sorted(best, reverse=True)[:k]:
        ids = tokenizer(prompts[p]).input_ids
        out.append({
            "activation": value, "prompt": p, "token": tokenizer.decode([ids[pos]]),
            "context": tokenizer.decode(ids[max(0, pos - width) : pos + 1], skip_special_tokens=True),
        })  # fmt: skip
    return out
