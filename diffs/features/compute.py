"""SAE latent diffing: which features of the base did each child amplify or suppress (arXiv 2506.19823).

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
    >>> import postlens as pl
    >>> from postlens.diffs.features.sae import load_sae
    >>> fam = pl.load("organism:base", sft="organism:sft", rl="organism:rl")
    >>> from postlens.models.specs import ORGANISM_ROOT
    >>> sae = load_sae(ORGANISM_ROOT / "sae")
    >>> diff, _ = diff_features(sae, fam.pairs, ["Q: 12 + 34 = ?\\n", "Q: 50 + 7 = ?\\n"], top_n=5)
    >>> s = diff.summary()
    >>> s.moved_more in ("sft", "rl"), 0 <= s.jaccard_top_n <= 1
    (True, True)
    >>> from dataclasses import asdict
    >>> asdict(pl.Result.from_json(diff.to_json()).summary()) == asdict(s)
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from postlens.diffs.features.latents import (  # noqa: F401  (encode_prompts, top_contexts re-exported)
    encode_prompts,
    encode_texts,
    latent_stats,
    top_contexts,
)
from postlens.diffs.features.result import FeatureDiff, FeatureSummary, PersonaFlags  # noqa: F401
from postlens.errors import ConfigError
from postlens.probes.personas.directions import Text, full_text


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

    """
    pairs = {"post": pairs} if hasattr(pairs, "post") else dict(pairs)
    if not pairs or not prompts:
        raise ConfigError("need at least one child and one prompt")
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
