"""Types of the models and tokenizers postlens reads, for annotations (no import at run time).

Example:
    >>> from postlens.models import types
    >>> types.__name__
    'postlens.models.types'
"""

from __future__ import annotations

from typing import Any, Protocol, TypeAlias

from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

#: A Hugging Face tokenizer (fast or slow): what every model of a pair is read with.
Tokenizer: TypeAlias = PreTrainedTokenizerBase
#: A Hugging Face causal LM (``AutoModelForCausalLM``), as loaded or as a backend wraps it.
Model: TypeAlias = PreTrainedModel


class Generating(Protocol):
    """What postlens asks of a model it samples from: transformers' `generate`, returning ids.

    transformers 5 mixes `generate` into each causal-LM class rather than into `PreTrainedModel`, so
    a `Model` is cast to this where it samples (``return_dict_in_generate`` is never set there).
    """

    def generate(self, **kwargs: Any) -> Tensor:
        """Token ids of the prompts followed by their continuations."""
        ...
