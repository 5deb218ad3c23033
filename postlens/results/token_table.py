"""A stored stand-in for a tokenizer: the strings of the token ids a result mentions.

Results that show tokens (fork positions, contexts) keep the tokenizer while they are live; in
JSON they keep only the strings of the ids they use, so a result read back from a file shows the
same tokens without loading any model. Decoding a sequence joins the tokens' own strings: for
byte-level BPE a character split across two tokens then shows as two replacement characters,
which only affects how a context reads, never a figure.

Example:
    >>> table = TokenTable({1: "Hello", 2: " world", 0: "<eos>"}, special={0})
    >>> table.decode([1, 2, 0], skip_special_tokens=True)
    'Hello world'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer


class TokenTable:
    """Token id → string for a fixed set of ids; ``decode`` like a tokenizer's."""

    def __init__(self, strings: Mapping[int, str], special: Iterable[int] = ()) -> None:
        self.strings = {int(k): v for k, v in strings.items()}
        self.special = {int(i) for i in special}

    @classmethod
    def of(cls, tokenizer: Tokenizer | TokenTable, ids: Iterable[int]) -> TokenTable:
        """The strings of `ids` under `tokenizer` (or copied from another `TokenTable`)."""
        unique = sorted({int(i) for i in ids})
        if isinstance(tokenizer, TokenTable):
            return cls({i: tokenizer.strings.get(i, "") for i in unique}, tokenizer.special)
        specials = set(getattr(tokenizer, "all_special_ids", []) or [])
        return cls({i: str(tokenizer.decode([i])) for i in unique}, specials & set(unique))

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """The joined strings of `ids`; an id outside the table shows as ``<id>``."""
        return "".join(
            self.strings.get(int(i), f"<{int(i)}>")
            for i in ids
            if not (skip_special_tokens and int(i) in self.special)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "strings": {str(k): v for k, v in self.strings.items()},
            "special": sorted(self.special),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TokenTable:
        return cls({int(k): v for k, v in data["strings"].items()}, data.get("special", ()))
