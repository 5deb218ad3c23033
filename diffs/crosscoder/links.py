"""A family's crosscoder(s), and their links to persona directions and fork positions.

`crosscoder_of_family` is ``fam.crosscoder()``: one pair crosscoder per child (a `ByChild`);
`three_way_of_family` is ``fam.crosscoder_three_way()``: one crosscoder over the base and every
child in one latent space. The texts default to the family's corpus (``fam.inputs.corpus``; on
the organism a sample of its pre-training mixture).

`link_personas` adds, for every latent and child, the persona direction (at the crosscoder's
layer) closest to the latent's decoder direction in that child, and its cosine; `link_forks`
adds each latent's firing rate at a child's fork positions (the token before the first
differing prediction) and elsewhere in the same completions, and their ratio (``fork_lift``).

Example:
    >>> import postlens as pl
    >>> fam = pl.load("organism:base", rl="organism:rl")
    >>> cfg = CrosscoderConfig(n_latents=64, k=4, batch_tokens=256, training_tokens=1024)
    >>> result = crosscoder_of_family(fam, fam.inputs.corpus(60), cfg, False)["rl"]
    >>> vectors = {"p": torch.ones(128)}
    >>> "persona_cos_rl" in link_personas(result, vectors).columns
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from postlens.diffs.crosscoder.analysis import crosscoder_of_models
from postlens.diffs.crosscoder.model import CrosscoderConfig
from postlens.diffs.crosscoder.result import CrosscoderResult
from postlens.errors import ConfigError, NotSupportedError
from postlens.results.family import ByChild

#: Texts the crosscoder trains on when none are given: this many of the family's corpus.
DEFAULT_CORPUS = 3000


def _texts(family: Any, texts: Any) -> list[str]:
    if texts is None:
        texts = family.inputs.corpus(DEFAULT_CORPUS)
        if texts is None:
            raise ConfigError(
                "give the texts to train the crosscoder on (inputs=[...], --prompts): this "
                "family has no default corpus"
            )
    return [t if isinstance(t, str) else getattr(t, "prompt", str(t)) for t in texts]


def crosscoder_of_family(
    family: Any, inputs: Any, config: CrosscoderConfig, progress: bool
) -> ByChild:
    """``fam.crosscoder``: one crosscoder of the base and each child, on the same texts."""
    texts, specs = _texts(family, inputs), {"base": family.base_spec, **family.specs}
    out = {}
    for child, pair in family.pairs.items():
        models = {"base": pair.base, child: pair.post}
        out[child] = crosscoder_of_models(models, texts, config, progress, specs)
    return ByChild("crosscoder", out)


def three_way_of_family(
    family: Any, inputs: Any, config: CrosscoderConfig, progress: bool
) -> CrosscoderResult:
    """``fam.crosscoder_three_way``: one crosscoder over the base and every child."""
    specs = {"base": family.base_spec, **family.specs}
    return crosscoder_of_models(family.models(), _texts(family, inputs), config, progress, specs)


def _persona_vectors(personas: Any, layer: int) -> dict[str, Tensor]:
    """Persona name → direction at `layer`, from a `PersonaAnalysis`, a `PersonaSet` or a dict."""
    found = getattr(personas, "vectors", personas)
    if hasattr(found, "at"):
        return {n: d.vector.float() for n, d in found.at(layer).items()}
    return {n: torch.as_tensor(v).float() for n, v in found.items()}


def link_personas(result: CrosscoderResult, personas: Any) -> CrosscoderResult:
    """Add ``persona_c`` and ``persona_cos_c``: the closest persona direction to d_j^c."""
    from postlens.hooks import parse_hook

    cc = _trained(result)
    point = parse_hook(result.hook, 10**6)
    if point.site != "hook_resid_post" and not isinstance(personas, Mapping):
        raise NotSupportedError("persona directions are read on hook_resid_post; pass a dict")
    vectors = _persona_vectors(personas, point.layer or 0)
    names = list(vectors)
    mat = torch.stack([v / v.norm().clamp_min(1e-12) for v in vectors.values()])
    dec = cc.W_dec.detach()
    for i, c in enumerate(result.models[1:], start=1):
        d = dec[:, i] / dec[:, i].norm(dim=-1, keepdim=True).clamp_min(1e-12)
        cos = d @ mat.T
        best = cos.abs().argmax(-1)
        result.columns[f"persona_{c}"] = np.array([names[b] for b in best.tolist()], dtype=object)
        result.columns[f"persona_cos_{c}"] = cos.gather(1, best[:, None])[:, 0].numpy()
    return result


def _trained(result: CrosscoderResult) -> Any:
    if result.crosscoder is None:
        raise NotSupportedError("links need the trained crosscoder; this result was read from JSON")
    return result.crosscoder


@torch.no_grad()
def link_forks(result: CrosscoderResult, models: Mapping[str, Any], forks: Mapping[str, Any]) -> CrosscoderResult:  # fmt: skip
    """Add ``fork_rate_c``, ``other_rate_c`` and ``fork_lift_c`` from each child's `ForkResult`.

    Args:
        result: the crosscoder's result (trained in this session).
        models: name → `Backend`, covering `result.models`.
        forks: child → its `ForkResult` (``fam.forks(...)``).
    """
    cc = _trained(result)
    backends = [models[m] for m in result.models]
    for child in result.children:
        if child not in forks:
            continue
        fired, is_fork = _fork_firing(cc, backends, forks[child], result.hook)
        n = len(result.columns["freq"])
        rate = fired[is_fork].float().mean(0) if is_fork.any() else torch.full((n,), torch.nan)
        other = fired[~is_fork].float().mean(0) if (~is_fork).any() else torch.full((n,), torch.nan)
        result.columns[f"fork_rate_{child}"] = rate.numpy()
        result.columns[f"other_rate_{child}"] = other.numpy()
        result.columns[f"fork_lift_{child}"] = (rate / other.clamp_min(1e-6)).numpy()
    return result


def _fork_firing(cc: Any, backends: list[Any], forks: Any, hook: str) -> tuple[Tensor, Tensor]:
    """Which latents fire at each scored position of a `ForkResult`, and which are forks."""
    from postlens.diffs.crosscoder.train import chunk_activations

    cols, seqs = forks.columns, forks.sequences
    fork_flag = np.asarray(forks.is_fork)
    pad = backends[0].tokenizer.pad_token_id or 0
    fired, labels = [], []
    for start in range(0, len(seqs), cc.config.texts_per_chunk):
        chunk = seqs[start : start + cc.config.texts_per_chunk]
        rows = [s.prompt_ids + s.completion_ids for s in chunk]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        attn = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        mask, label = (
            torch.zeros_like(ids, dtype=torch.bool),
            torch.zeros_like(ids, dtype=torch.bool),
        )
        inside = (cols["seq"] >= start) & (cols["seq"] < start + len(chunk))
        for s, p, f in zip(
            cols["seq"][inside], cols["pos"][inside], fork_flag[inside], strict=True
        ):
            # position p's token is predicted at the last token before it
            t = len(seqs[int(s)].prompt_ids) + int(p) - 1
            mask[int(s) - start, t], label[int(s) - start, t] = True, bool(f)
        acts = chunk_activations(backends, {"input_ids": ids, "attention_mask": attn}, mask, hook)
        fired.append(cc.encode(cc.normalise(acts)) > 0)
        labels.append(label[mask])
    return torch.cat(fired), torch.cat(labels)
