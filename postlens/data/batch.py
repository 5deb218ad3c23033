"""Token batches and generated samples, shared by every feature."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor


@dataclass
class TokenBatch:
    """Tokenized texts, padded into one batch.

    Attributes:
        input_ids: token ids, padded with the tokenizer's pad id.
        attention_mask: 1 for real tokens, 0 for padding.
        texts: the texts that were tokenized.
    """

    input_ids: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    texts: list[str]

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device | str) -> TokenBatch:
        return TokenBatch(self.input_ids.to(device), self.attention_mask.to(device), self.texts)


@dataclass
class Sample:
    """One sampled completion.

    Attributes:
        prompt: the prompt text.
        completion: the decoded completion (special tokens removed).
        prompt_ids: the prompt's token ids (no padding).
        completion_ids: the completion's token ids, up to and including eos when produced.
        model: which model sampled it (``"base"`` or ``"post"``).
    """

    prompt: str
    completion: str
    prompt_ids: list[int]
    completion_ids: list[int]
    model: str
