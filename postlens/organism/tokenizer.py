"""The organism's tokenizer, built in code: digits, symbols, spaces and whole words as tokens.

Every character of the task's text is covered, spaces are tokens of their own, and decoding fuses
tokens back, so ``decode(encode(text)) == text``.

Example:
    >>> tok = build_organism_tokenizer()
    >>> tok.decode(tok("Q: 12+3=?").input_ids, skip_special_tokens=True)
    'Q: 12+3=?'
"""

from __future__ import annotations

import string
from typing import Any

from postlens.organism.corpus import FILLER_WORDS
from postlens.organism.task import TAGS

SPECIAL = ("<pad>", "<s>", "</s>", "<unk>")
TASK_WORDS = ("Q", "write", "carry", "got", "answer")
SYMBOLS = tuple(" \n+=?:.,") + tuple(string.digits)
# Words first, then single characters; a tag is one token.
PATTERN = r"<[a-z]+>|[A-Za-z]+|\d|\s|."


def organism_vocab() -> list[str]:
    """Every token, in id order."""
    letters = tuple(string.ascii_lowercase)
    words = [*TASK_WORDS, *FILLER_WORDS]
    seen: dict[str, None] = dict.fromkeys([*SPECIAL, *TAGS.values(), *words, *SYMBOLS, *letters])
    return list(seen)


def build_organism_tokenizer() -> Any:
    """A `PreTrainedTokenizerFast` that adds ``<s>`` in front of every text."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(organism_vocab())}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(PATTERN), "isolated")
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
