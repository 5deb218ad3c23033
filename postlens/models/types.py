"""Types of the models and tokenizers postlens reads, for annotations (no import at run time).

Example:
    >>> from postlens.models import types
    >>> types.__name__
    'postlens.models.types'
"""

from __future__ import annotations

from typing import TypeAlias

from transformers import PreTrainedModel, PreTrainedTokenizerBase

#: A Hugging Face tokenizer (fast or slow): what every model of a pair is read with.
Tokenizer: TypeAlias = PreTrainedTokenizerBase
#: A Hugging Face causal LM (``AutoModelForCausalLM``), as loaded or as a backend wraps it.
Model: TypeAlias = PreTrainedModel
