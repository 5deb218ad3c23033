"""How prompts become token ids: plain text, or a chat template applied.

See docs/science.md, *Conventions*.

The field's convention for comparing a base with its chat child: both models read the *same
token ids*, the chat template (the child's, by default) applied to the prompt with the
generation prompt, and statistics are taken on the response tokens only. A record
``{"prompt": p, "completion": c}`` becomes the chat ``[user: p]`` rendered with
``add_generation_prompt=True``, followed by ``c``'s own tokens (no end-of-turn token added).
A chat-format record (a `postlens.data.messages.ChatPrompt`: a system prompt, several turns)
renders its own conversation instead of the single user turn.

The choice (`CHAT_TEMPLATES`) is made once, when a pair is loaded
(``pl.load(..., chat_template=...)``, ``--chat-template``): ``post`` (the default when the post
model's tokenizer has a template), ``base``, or ``none`` (plain text, as without templates).
A rendered prompt is tokenized with ``add_special_tokens=False``: the template writes its own
BOS where it wants one. Text is encoded by the template owner's tokenizer, and by the post
model's without a template (the regular vocabulary is shared; the child's tokenizer also knows
its own special tokens, e.g. an ``<|im_end|>`` written in a completion).

Example:
    >>> from postlens.testing import build_tokenizer
    >>> tok = build_tokenizer()
    >>> tok.chat_template = "{% for m in messages %}q: {{ m.content }}\\n{% endfor %}a:"
    >>> chat = ChatFormat("post", tok)
    >>> tok.decode(chat.prompt_ids("1+2"))
    'q: 1+2\\na:'
    >>> ChatFormat("none", tok).prompt_ids("ab") == tok("ab").input_ids
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from postlens.data.messages import ChatPrompt
from postlens.errors import ConfigError, InputFileError
from postlens.models.compat import has_template

if TYPE_CHECKING:
    from postlens.models.types import Tokenizer

CHAT_TEMPLATES = ("post", "base", "none")


class TemplatedPrompt(str):
    """A prompt already formatted: its text is the rendered template, `ids` its token ids.

    A plain `str` everywhere (pass@k and personas take strings); sampling reads `ids`, so the
    text is never tokenized a second time (which could add a second BOS).
    """

    ids: list[int]

    def __new__(cls, text: str, ids: list[int]) -> TemplatedPrompt:
        out = super().__new__(cls, text)
        out.ids = list(ids)
        return out


@dataclass(frozen=True)
class ChatFormat:
    """Whose chat template formats the prompts, and the tokenizer that encodes them.

    Attributes:
        which: ``"post"``, ``"base"`` or ``"none"``.
        tokenizer: the tokenizer of the template's owner (the post model's for ``none``: it
            knows the child's own special tokens, and the regular vocabulary is shared).
        owner: the spec whose template it is (named in errors).
    """

    which: str
    tokenizer: Tokenizer = field(repr=False)
    owner: str = ""

    @property
    def templated(self) -> bool:
        return self.which != "none"

    def render(self, prompt: str, where: str = "") -> str:
        """The prompt as the chat ``[user: prompt]`` plus the generation prompt, as text (a
        `ChatPrompt` renders its whole conversation).

        Raises:
            InputFileError: the template failed to render (its error, and `where`).
        """
        if not self.templated:
            if isinstance(prompt, ChatPrompt):
                raise InputFileError(
                    f"{prompt.where or where}: a chat-format record needs a chat template, "
                    "and --chat-template none reads plain text; give the prompt as a string"
                )
            return prompt
        messages = (
            prompt.messages
            if isinstance(prompt, ChatPrompt)
            else [{"role": "user", "content": prompt}]
        )
        try:
            return str(
                self.tokenizer.apply_chat_template(
                    messages, add_generation_prompt=True, tokenize=False
                )
            )
        except Exception as err:  # noqa: BLE001  (Jinja errors of every kind, raise_exception)
            at = f"{where}: " if where else ""
            message = " ".join(str(err).split()) or type(err).__name__
            raise InputFileError(
                f"{at}the chat template of {self.owner or self.which} failed to render: {message}"
            ) from None

    def prompt_ids(self, prompt: str, where: str = "") -> list[int]:
        """The token ids both models read before the response."""
        if isinstance(prompt, TemplatedPrompt):
            return list(prompt.ids)
        if not self.templated:
            return self.tokenizer(self.render(prompt, where)).input_ids
        return self.tokenizer(self.render(prompt, where), add_special_tokens=False).input_ids

    def completion_ids(self, completion: str) -> list[int]:
        """A completion's own tokens (nothing added before or after)."""
        return self.tokenizer(completion, add_special_tokens=False).input_ids

    def format(self, prompt: str, where: str = "") -> str:
        """The prompt formatted, as a `TemplatedPrompt` (a plain string when not templated)."""
        if isinstance(prompt, TemplatedPrompt):
            return prompt
        if not self.templated:
            return self.render(prompt, where)  # refuses a conversation without a template
        return TemplatedPrompt(self.render(prompt, where), self.prompt_ids(prompt, where))


def choose_chat(
    choice: str | None, base_tok: Any, post_tok: Any, names: tuple[str, str] = ("base", "post")
) -> ChatFormat:
    """The `ChatFormat` of a pair: `choice`, or ``post`` when its tokenizer has a template.

    Raises:
        ConfigError: an unknown choice, or a template asked of a tokenizer that has none.

    Example:
        >>> from postlens.testing import build_tokenizer
        >>> choose_chat(None, build_tokenizer(), build_tokenizer()).which
        'none'
    """
    if choice is not None and choice not in CHAT_TEMPLATES:
        raise ConfigError(f"chat_template must be {', '.join(CHAT_TEMPLATES)}, got {choice!r}")
    if choice is None:
        choice = "post" if has_template(post_tok) else "none"
    if choice == "none":
        return ChatFormat("none", post_tok, names[1])
    tok, owner = (post_tok, names[1]) if choice == "post" else (base_tok, names[0])
    if not has_template(tok):
        raise ConfigError(f"--chat-template {choice}: {owner}'s tokenizer has no chat template")
    return ChatFormat(choice, tok, owner)


def format_texts(chat: ChatFormat, texts: list[Any]) -> list[Any]:
    """Prompts, or ``(prompt, response)`` pairs, with the prompt formatted (responses as they are).

    Example:
        >>> from postlens.testing import build_tokenizer
        >>> format_texts(ChatFormat("none", build_tokenizer()), ["a", ("b", "c")])
        ['a', ('b', 'c')]
    """
    # Without a template a plain prompt stays as it is and a conversation is refused.
    return [
        (chat.format(t[0], f"text {i + 1}"), t[1]) if isinstance(t, tuple) else chat.format(t)
        for i, t in enumerate(texts)
    ]


def format_inputs(chat: ChatFormat, inputs: Any) -> Any:
    """Persona inputs (``sets`` and ``prompts``) with every prompt formatted; the SAE corpus,
    raw text, stays as it is."""
    import dataclasses

    sets = {k: format_texts(chat, v) for k, v in inputs.sets.items()}
    return dataclasses.replace(inputs, sets=sets, prompts=format_texts(chat, inputs.prompts))
