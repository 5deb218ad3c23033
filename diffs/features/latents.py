"""Reading SAE latents on texts: encode, summarise, contrast, and find top activating contexts.

The building blocks of latent diffing (`postlens.diffs.features.compute`): per-prompt latent activations
of one model through one SAE, their frequency and mean, per-text contrasts of persona-tagged sets,
and the contexts where a latent fires hardest (with their tokens).

Example:
    >>> import postlens as pl
    >>> from postlens.diffs.features.sae import load_sae
    >>> from postlens.data.defaults import provider_for
    >>> from postlens.models.specs import ORGANISM_ROOT
    >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
    >>> sae = load_sae(ORGANISM_ROOT / "sae")
    >>> corpus = provider_for("organism:base").corpus(20, seed=1)
    >>> feats = encode_prompts(sae, pair.base, corpus)
    >>> len(feats), feats[0].shape[1]  # one [pos, d_sae] tensor per text
    (20, 512)
    >>> frequency, mean = latent_stats(feats)
    >>> latent = int(mean.argmax())  # the latent with the largest mean activation
    >>> top = top_contexts(feats, corpus, pair.tokenizer, latent=latent, k=3)
    >>> len(top), top[0]["activation"] >= top[1]["activation"] >= top[2]["activation"]
    (3, True)
    >>> top[0]["tokens"][-1] == top[0]["token"]  # the context ends with the firing token
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from postlens.diffs.features.sae import check_sae
from postlens.metrics import spearman  # noqa: F401  (re-exported for older imports)
from postlens.probes.personas.directions import Text, full_text

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer


@torch.no_grad()
def encode_prompts(
    sae: Any, backend: Any, prompts: Sequence[str], batch_size: int = 32
) -> list[Float[Tensor, "pos d_sae"]]:
    """SAE latent activations of every prompt's tokens: one ``[pos, d_sae]`` tensor per prompt.

    Example:
        >>> import postlens as pl
        >>> from postlens.diffs.features.sae import load_sae
        >>> from postlens.models.specs import ORGANISM_ROOT
        >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
        >>> sae = load_sae(ORGANISM_ROOT / "sae")
        >>> feats = encode_prompts(sae, pair.base, ["Q: 1+2=?\\n"])
        >>> len(feats), feats[0].shape  # BOS and the 9 tokens of the prompt
        (1, torch.Size([10, 512]))
    """
    hook = check_sae(sae, backend.hf_model)
    device = sae.W_dec.device
    out: list[Any] = []
    for acts, mask in backend.iter_activations(prompts, hook, batch_size):
        feats = sae.encode(acts.float().to(device)).cpu()
        out.extend(feats[i, : int(m.sum())] for i, m in enumerate(mask))
    return out


def encode_texts(
    sae: Any, backend: Any, texts: Sequence[Text], batch_size: int = 32
) -> list[Float[Tensor, "pos d_sae"]]:
    """`encode_prompts` for texts or ``(prompt, response)`` pairs: a pair keeps only the latents
    of its response tokens (as persona directions average them; ``("", text)`` drops the BOS).

    Example:
        >>> import postlens as pl
        >>> from postlens.diffs.features.sae import load_sae
        >>> from postlens.models.specs import ORGANISM_ROOT
        >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
        >>> sae = load_sae(ORGANISM_ROOT / "sae")
        >>> encode_texts(sae, pair.base, [("<careful>", " Q: 1+2=?\\n")])[0].shape  # 10 response tokens
        torch.Size([10, 512])
    """
    full = [full_text(t) for t in texts]
    feats = encode_prompts(sae, backend, full, batch_size)
    tok = backend.tokenizer
    return [
        f if isinstance(t, str) else f[len(tok(t[0]).input_ids) :]
        for f, t in zip(feats, texts, strict=True)
    ]


def latent_stats(feats: list[Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Activation frequency (share of tokens > 0) and mean activation of each latent."""
    flat = torch.cat(feats)
    return (flat > 0).float().mean(0).numpy(), flat.mean(0).numpy()


def tagged_contrasts(
    tagged: Mapping[str, list[Tensor]], untagged: list[Tensor] | None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Persona → (per-text mean latents of its texts, of the contrasting texts)."""
    means = {n: torch.stack([f.mean(0) for f in fs]).numpy() for n, fs in tagged.items() if fs}
    if untagged:
        neg = torch.stack([f.mean(0) for f in untagged]).numpy()
        return {n: (m, neg) for n, m in means.items()}
    if len(means) < 2:
        return {}
    return {
        n: (m, np.concatenate([o for k, o in means.items() if k != n])) for n, m in means.items()
    }


def top_contexts(
    feats: list[Tensor],
    prompts: Sequence[str],
    tokenizer: Tokenizer,
    latent: int,
    k: int = 5,
    width: int = 12,
) -> list[dict[str, Any]]:
    """The `k` prompts where `latent` fires hardest, each at its strongest token.

    Each context has the activation, the prompt index, the position, the token, the text of
    up to `width` tokens before it, and those tokens as a list (``tokens``, the last one firing).
    """
    best = []
    for p, f in enumerate(feats):
        pos = int(f[:, latent].argmax())
        best.append((float(f[pos, latent]), p, pos))
    out: list[Any] = []
    for value, p, pos in sorted(best, key=lambda t: (-t[0], t[1]))[:k]:
        if value <= 0:
            break
        ids = tokenizer(prompts[p]).input_ids[max(0, pos - width) : pos + 1]
        out.append({
            "activation": value, "prompt": p, "position": pos,
            "token": tokenizer.decode(ids[-1:]),
            "context": tokenizer.decode(ids, skip_special_tokens=True),
            "tokens": tokenizer.convert_ids_to_tokens(ids),
        })  # fmt: skip
    return out
