"""What persona analyses read: texts (whole, or a prompt and the response to average) and their
mean activations, and the inputs of a persona analysis.

A text given as a ``(prompt, response)`` pair contributes the average over its *response* tokens
only, as in Anthropic's persona vectors (arXiv 2507.21509); a plain string all of its tokens.

Example:
    >>> full_text(("Q: 1+2=?", " 3")), full_text("plain")
    ('Q: 1+2=? 3', 'plain')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float
from torch import Tensor

from postlens.errors import ConfigError, InputFileError
from postlens.probes.provenance import unwrap_model
from postlens.probes.readings import resid_post

if TYPE_CHECKING:
    from postlens.backends.base import ModelLike
    from postlens.models.types import Tokenizer

#: A text, or a ``(prompt, response)`` pair whose response tokens alone are averaged.
Text = str | tuple[str, str]


def frame_table(frame: Any, digits: int = 3) -> str:
    """A DataFrame as an escaped HTML table (`postlens.viz.html.table`), for ``_repr_html_``."""
    from postlens.viz.html import table

    return table(frame.to_dict("records"), list(frame.columns), digits)


def full_text(text: Text) -> str:
    """The whole text a `Text` stands for (a pair's prompt and response joined)."""
    return text if isinstance(text, str) else text[0] + text[1]


def _encode(tokenizer: Tokenizer, texts: Sequence[Text]) -> tuple[dict[str, Tensor], Tensor]:
    """Right-padded ids of the full texts, and the mask of the tokens each text averages."""
    full = [full_text(t) for t in texts]
    enc = tokenizer(full, return_tensors="pt", padding=True, padding_side="right")
    keep = enc["attention_mask"].clone()
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            # The prompt's tokens are a prefix of the full text's when the prompt ends at a
            # token boundary (e.g. a newline), which is how contrastive prompts are written.
            keep[i, : len(tokenizer(text[0]).input_ids)] = 0
            if not keep[i].any():
                raise ConfigError(f"text {i} has an empty response: nothing to average")
    return enc, keep


def mean_activations(
    model: ModelLike,
    tokenizer: Tokenizer | None,
    texts: Sequence[Text],
    layers: Sequence[int],
    batch_size: int = 32,
) -> dict[int, Float[Tensor, "n d_model"]]:
    """Each text's residual stream after each layer, averaged over its (response) tokens.

    Args:
        model: a Hugging Face causal LM or a postlens `Backend` (e.g. ``pair.post``).
        tokenizer: its tokenizer.
        texts: strings, or ``(prompt, response)`` pairs (response tokens only).
        layers: blocks to read.
        batch_size: texts per forward pass.

    Example:
        >>> import postlens as pl
        >>> pair = pl.load("organism:base", rl="organism:rl")["rl"]
        >>> texts = ["Q: 1+2=?\\n", ("<careful>", " Q: 1+2=?\\n")]  # all tokens; the response's
        >>> acts = mean_activations(pair.base, pair.tokenizer, texts, [0, 1])
        >>> sorted(acts), acts[1].shape
        ([0, 1], torch.Size([2, 128]))
    """
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ConfigError("pass the tokenizer of a bare model (a Backend carries its own)")
    hf_model = unwrap_model(model)
    out: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    for start in range(0, len(texts), batch_size):
        enc, keep = _encode(tokenizer, texts[start : start + batch_size])
        acts = resid_post(hf_model, enc["input_ids"], enc["attention_mask"], layers)
        weight = keep.unsqueeze(-1).float()
        for layer in layers:
            out[layer].append((acts[layer].cpu() * weight).sum(1) / weight.sum(1))
    return {layer: torch.cat(v) for layer, v in out.items()}


@dataclass
class PersonaInputs:
    """What a persona analysis reads.

    Attributes:
        sets: persona → tagged texts or ``(tag, text)`` pairs (only the text's tokens are
            averaged, so sets that differ by the tag alone isolate the persona from content).
        prompts: the same untagged prompts for every model.
        corpus: texts for the SAE's quality, top contexts and training (default: `prompts`).
    """

    sets: dict[str, list[Text]]
    prompts: list[Text]
    corpus: list[str] | None = None

    def __post_init__(self) -> None:
        if len(self.sets) < 2 or min(len(v) for v in self.sets.values()) < 2:
            raise InputFileError("persona analysis needs at least two personas with two texts each")
        if not self.prompts:
            raise InputFileError("persona analysis needs at least one untagged prompt")

    @property
    def texts(self) -> list[str]:
        """The corpus, or the untagged prompts' whole texts."""
        return list(self.corpus) if self.corpus else [full_text(t) for t in self.prompts]
