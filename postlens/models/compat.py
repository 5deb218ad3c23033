"""Can two models be compared token by token and layer by layer? Say exactly what differs.

Two models are comparable when their architecture family, widths, depth and heads agree and
their *regular* vocabularies agree id for id. Everything else that real base → instruct pairs
change is reported, not refused (`TokenizerComparison`):

* special tokens (bos/eos/pad/unk) and added tokens (``<|im_end|>``, ``<think>``): an added
  token may be renamed (same id, another string, as reasoning distills rename BOS/EOS), added
  or dropped;
* ids present in only one model (an extra added token, a larger embedding).

**The shared-id rule.** The *shared ids* are the ids below both models' logit widths that both
tokenizers give a string (the same one, or two added tokens: a renamed special token) or that
neither does (embedding padding rows). Both next-token distributions are compared over the
shared ids only, renormalised there: p_shared(i) = p(i) / Σ_{j shared} p(j), i.e. the softmax of
the shared logits (`postlens.diffs.divergence.restrict_logits`). A sequence is scored up to its
first token that is not shared: the position predicting it, and every position after it, are
excluded (and counted, `postlens.data.sequences.keep_shared`); a prompt holding such a token
cannot be read by the other model and is refused.

A genuinely different vocabulary (a regular id mapping to different strings) is refused with
the list, as is a different architecture.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from postlens.errors import IncompatibleModelsError

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer

_SPECIAL = ("bos_token", "eos_token", "pad_token", "unk_token")
#: End-of-turn tokens of well-known chat templates: generation stops at any that a model has.
END_OF_TURN = (
    "<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "<end_of_turn>", "<|end|>",
    "<|eom_id|>", "<｜end▁of▁sentence｜>",
)  # fmt: skip
_MAX_LISTED = 5


def config_differences(base_cfg: Any, post_cfg: Any) -> list[str]:
    """Differences in architecture family, width, depth and heads (the vocabulary is separate).

    Example:
        >>> from types import SimpleNamespace as NS
        >>> config_differences(NS(model_type="llama", hidden_size=8), NS(model_type="gpt2", hidden_size=8))
        ['architecture family (model_type): base llama vs post gpt2']
    """
    diffs = []
    checks = {
        "architecture family (model_type)": "model_type",
        "d_model (hidden_size)": "hidden_size",
        "layer count (num_hidden_layers)": "num_hidden_layers",
        "attention heads (num_attention_heads)": "num_attention_heads",
    }
    for label, attr in checks.items():
        a, b = getattr(base_cfg, attr, None), getattr(post_cfg, attr, None)
        if a != b:
            diffs.append(f"{label}: base {a} vs post {b}")
    return diffs


@dataclass
class TokenizerComparison:
    """How the tokenizers of a pair differ, and which ids the two models share.

    Attributes:
        special: special-token differences, e.g. ``"eos_token: base '</s>' vs post '<|im_end|>'"``.
        renamed: added tokens whose id is the same but whose string differs (``id: a → b``).
        only_base: tokens (``'string' (id)``) only the base has.
        only_post: tokens only the post model has.
        chat_template: which tokenizers have a chat template (``base``, ``post``, both, none).
        n_shared: how many ids are shared (see the module doc).
        width: the common logit width, min of the two models' vocab sizes.
        masked: ids below `width` that are not shared (their logits are left out).
        stop_ids: the end-of-turn ids generation stops at (either model's eos and the
            `END_OF_TURN` tokens either has), shared ones only.
        vocab_size: the base and post logit widths.
        segmentation: parts of the tokenization pipeline that differ although the vocabularies
            may agree (``merges``, ``normalizer``, ``pre_tokenizer``): the same text can then
            split into other tokens, and postlens encodes it with one tokenizer for both models.
    """

    special: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    only_base: list[str] = field(default_factory=list)
    only_post: list[str] = field(default_factory=list)
    chat_template: list[str] = field(default_factory=list)
    n_shared: int = 0
    width: int = 0
    masked: list[int] = field(default_factory=list)
    stop_ids: list[int] = field(default_factory=list)
    vocab_size: tuple[int, int] = (0, 0)
    segmentation: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """Whether nothing differs (same tokens, same specials, same splitting, same widths)."""
        differs = self.special or self.renamed or self.only_base or self.only_post
        return not (differs or self.segmentation) and self.vocab_size[0] == self.vocab_size[1]

    def is_shared(self, token_id: int) -> bool:
        """Whether both models have `token_id` (see the shared-id rule)."""
        return 0 <= token_id < self.width and token_id not in self._masked

    @property
    def _masked(self) -> frozenset[int]:
        cached = self.__dict__.get("_masked_set")
        if cached is None or len(cached) != len(self.masked):
            cached = self.__dict__["_masked_set"] = frozenset(self.masked)
        return cached

    def lines(self) -> list[str]:
        """What differs, one line each (empty when nothing does)."""
        out = [f"special token {s}" for s in self.special]
        out += [f"renamed added token {s}" for s in self.renamed]
        for who, items in (("base", self.only_base), ("post", self.only_post)):
            if items:
                out.append(f"only in {who} ({len(items)}): {_show(items)}")
        if self.segmentation:
            out.append(
                f"tokenization differs ({', '.join(self.segmentation)}): the same text can split "
                "into other tokens; both models read the post tokenizer's (or the template "
                "owner's) ids"
            )
        if self.vocab_size[0] != self.vocab_size[1]:
            out.append(
                f"logit widths base {self.vocab_size[0]} vs post {self.vocab_size[1]}: compared "
                f"on the {self.n_shared} shared ids, renormalised"
            )
        return out

    def describe(self) -> str:
        """One line: identical, or the differences."""
        if self.identical:
            return f"identical: {self.width} ids"
        return f"{self.n_shared} shared ids; " + "; ".join(self.lines())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("masked")  # ids, possibly many: the count says enough
        out["n_masked"] = len(self.masked)
        return out


def _vocab(tok: Any) -> tuple[dict[int, str], set[int]]:
    """id → string of every token, and the ids of added tokens."""
    by_id = {i: t for t, i in tok.get_vocab().items()}
    return by_id, set(getattr(tok, "added_tokens_decoder", {}) or {})


def compare_tokenizers(
    base_tok: Any, post_tok: Any, widths: tuple[int, int] | None = None
) -> tuple[TokenizerComparison, list[str]]:
    """Compare two tokenizers: what differs (reported) and what makes them incomparable.

    Args:
        base_tok: the base model's tokenizer.
        post_tok: the post model's tokenizer.
        widths: the two models' logit widths (``config.vocab_size``); default the tokenizers'.

    Returns:
        The comparison and the refusals (regular ids mapping to different strings).

    Example:
        >>> from postlens.testing import build_tokenizer
        >>> base, post = build_tokenizer(), build_tokenizer()
        >>> _ = post.add_special_tokens({"eos_token": "<|im_end|>"})
        >>> tokens, refusals = compare_tokenizers(base, post)
        >>> tokens.special, tokens.only_post, refusals
        (["eos_token: base '</s>' vs post '<|im_end|>'"], ["'<|im_end|>' (50)"], [])
    """
    (va, added_a), (vb, added_b) = _vocab(base_tok), _vocab(post_tok)
    width_a, width_b = widths or (len(base_tok), len(post_tok))
    width, cmp = min(width_a, width_b), TokenizerComparison(vocab_size=(width_a, width_b))
    refusals, masked = [], []
    for i in sorted(set(va) | set(vb)):
        a, b = va.get(i), vb.get(i)
        if a == b:
            continue
        if a is not None and b is not None:
            if i in added_a or i in added_b:
                cmp.renamed.append(f"{i}: {a!r} → {b!r}")
            else:
                refusals.append(f"{i}: {a!r} vs {b!r}")
            continue
        (cmp.only_base if b is None else cmp.only_post).append(f"{a or b!r} ({i})")
        if i < width:
            masked.append(i)
    cmp.width, cmp.masked, cmp.n_shared = width, masked, width - len(masked)
    for name in _SPECIAL:
        a, b = getattr(base_tok, name, None), getattr(post_tok, name, None)
        if a != b:
            cmp.special.append(f"{name}: base {a!r} vs post {b!r}")
    cmp.chat_template = [w for w, t in (("base", base_tok), ("post", post_tok)) if has_template(t)]
    cmp.segmentation = _segmentation(base_tok, post_tok)
    cmp.stop_ids = [i for i in stop_ids(base_tok, post_tok) if cmp.is_shared(i)]
    return cmp, refusals


def _segmentation(base_tok: Any, post_tok: Any) -> list[str]:
    """The parts of two fast tokenizers' pipelines that differ beyond the vocabulary (a slow
    tokenizer has no pipeline to compare: nothing is reported)."""
    import json

    pipelines = []
    for tok in (base_tok, post_tok):
        backend = getattr(tok, "backend_tokenizer", None)
        if backend is None:
            return []
        pipelines.append(json.loads(backend.to_str()))
    a, b = pipelines
    out = []
    if (a.get("model") or {}).get("merges") != (b.get("model") or {}).get("merges"):
        out.append("merges")
    out += [part for part in ("normalizer", "pre_tokenizer") if a.get(part) != b.get(part)]
    return out


def check_tokenizer_fits(model: Any, tokenizer: Any, where: str) -> None:
    """Refuse a tokenizer whose text can produce ids past the model's embedding rows.

    Such ids index past the embedding (an IndexError deep inside torch, mid-run); a tokenizer
    saved from another model is the usual cause. Fewer ids than rows is common (padded
    embeddings) and fine, and so is an added *special* token past the rows (transformers' GGUF
    conversion adds one): text only reaches it by spelling it out. The pad and BOS ids are
    checked too, as every batch uses them.

    Raises:
        IncompatibleModelsError: naming `where`, both sizes and the first ids past the rows.

    Example:
        >>> from postlens.testing import build_tokenizer, tiny_model
        >>> model, _ = tiny_model("llama")
        >>> check_tokenizer_fits(model, build_tokenizer(("extra",)), "m")
        Traceback (most recent call last):
        ...
        postlens.errors.IncompatibleModelsError: m: its tokenizer has 51 ids but the model's embedding has 50 rows (id 50 '\\n' would index past it): a tokenizer from another model?
    """
    rows = getattr(model.get_input_embeddings(), "num_embeddings", None)
    if rows is None or len(tokenizer) <= rows:
        return
    special = {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    used = {tokenizer.pad_token_id, tokenizer.bos_token_id}
    bad = [i for i in range(rows, len(tokenizer)) if i not in special or i in used]
    if bad:
        shown = ", ".join(f"{i} {tokenizer.convert_ids_to_tokens(i)!r}" for i in bad[:3])
        raise IncompatibleModelsError(
            f"{where}: its tokenizer has {len(tokenizer)} ids but the model's embedding has "
            f"{rows} rows (id{'s' if len(bad) > 1 else ''} {shown}{' ...' if len(bad) > 3 else ''} "
            "would index past it): a tokenizer from another model?"
        )


def has_template(tokenizer: Tokenizer) -> bool:
    """Whether a tokenizer carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def stop_ids(*tokenizers: Any) -> list[int]:
    """Every tokenizer's eos id and the `END_OF_TURN` tokens any of them has, sorted.

    Example:
        >>> from postlens.testing import build_tokenizer
        >>> stop_ids(build_tokenizer())
        [2]
    """
    out: set[int] = set()
    for tok in tokenizers:
        if tok is None:
            continue
        if tok.eos_token_id is not None:
            out.add(int(tok.eos_token_id))
        vocab = tok.get_vocab()
        out.update(vocab[t] for t in END_OF_TURN if t in vocab)
    return sorted(out)


def tokenizer_differences(base_tok: Any, post_tok: Any) -> list[str]:
    """What makes two tokenizers incomparable (a regular id with two strings); [] otherwise.

    Special and added tokens that differ are not listed here: they are reported
    (`compare_tokenizers`), not refused.
    """
    refusals = compare_tokenizers(base_tok, post_tok)[1]
    if not refusals:
        return []
    return [f"vocabularies differ at {len(refusals)} regular id(s): {_show(refusals)}"]


def _show(tokens: list[str]) -> str:
    shown = ", ".join(tokens[:_MAX_LISTED])
    more = len(tokens) - _MAX_LISTED
    return shown + (f" (+{more} more)" if more > 0 else "")


def check_comparable(
    base_cfg: Any, post_cfg: Any, base_tok: Any, post_tok: Any, names: tuple[str, str]
) -> TokenizerComparison:
    """The pair's `TokenizerComparison`, or `IncompatibleModelsError` listing every refusal.

    Example:
        >>> import postlens as pl
        >>> pair = pl.load("organism:base", rl="organism:rl").pair
        >>> cfg, tok = pair.base.hf_model.config, pair.tokenizer
        >>> check_comparable(cfg, cfg, tok, tok, ("a", "b")).identical
        True
    """
    widths = (base_cfg.vocab_size, post_cfg.vocab_size)
    tokens, refusals = compare_tokenizers(base_tok, post_tok, widths)
    diffs = config_differences(base_cfg, post_cfg)
    if refusals:
        diffs.append(
            f"vocabularies differ at {len(refusals)} regular id(s) (id: base vs post): "
            + _show(refusals)
        )
    if diffs:
        raise IncompatibleModelsError(
            f"{names[0]} and {names[1]} cannot be compared: " + " | ".join(diffs)
        )
    return tokens
