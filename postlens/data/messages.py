"""Chat-format prompt records: a conversation (system prompt, several turns) as the prompt.

A record may give its prompt as messages, as TRL writes conversational data:

* ``{"messages": [...]}``: the conversation; when its last message is the assistant's, that
  message is the completion (teacher-forced) and the turns before it are the prompt;
* ``{"prompt": [...], "completion": [...]}``: TRL's conversational prompt-completion form, the
  completion one assistant message (or a plain string).

Each message is ``{"role": ..., "content": "..."}``. The prompt becomes a `ChatPrompt`: a plain
`str` everywhere (its text is the last user turn, which is what reports show), carrying the
whole conversation, which the chat template renders. A template injects its own default system
prompt only when the conversation has none, so a record with ``{"role": "system", "content":
""}`` (or any system prompt of the user's) replaces it.

Example:
    >>> p, c = from_messages([{"role": "system", "content": "Be brief."},
    ...                       {"role": "user", "content": "2+3?"},
    ...                       {"role": "assistant", "content": "5"}], "f.jsonl:1")
    >>> str(p), len(p.messages), c
    ('2+3?', 2, '5')
"""

from __future__ import annotations

from typing import Any

from postlens.errors import InputFileError

#: The roles a message may have (the chat templates of the families postlens reads know these).
ROLES = ("system", "user", "assistant")


class ChatPrompt(str):
    """A prompt given as a conversation; its `str` value is the last user turn.

    Attributes:
        messages: the conversation, as ``{"role", "content"}`` dicts, ending with a user turn.
        where: the file and line it came from (named when it cannot be rendered).
    """

    messages: list[dict[str, str]]
    where: str

    def __new__(cls, messages: list[dict[str, str]], where: str = "") -> ChatPrompt:
        users = [m["content"] for m in messages if m["role"] == "user"]
        out = super().__new__(cls, users[-1] if users else messages[-1]["content"])
        out.messages = [dict(m) for m in messages]
        out.where = where
        return out


def check_messages(value: Any, where: str, field: str) -> list[dict[str, str]]:
    """`value` as a list of ``{"role", "content"}`` messages.

    Raises:
        InputFileError: naming `where`, the field and the message at fault.

    Example:
        >>> check_messages([{"role": "user"}], "f.jsonl:3", "messages")
        Traceback (most recent call last):
        ...
        postlens.errors.InputFileError: f.jsonl:3: 'messages' message 1 needs string 'role' and 'content' fields
    """
    if not isinstance(value, list) or not value:
        raise InputFileError(f"{where}: {field!r} must be a non-empty list of messages")
    out = []
    for i, m in enumerate(value, start=1):
        if not (isinstance(m, dict) and isinstance(m.get("role"), str)
                and isinstance(m.get("content"), str)):  # fmt: skip
            raise InputFileError(
                f"{where}: {field!r} message {i} needs string 'role' and 'content' fields"
            )
        if m["role"] not in ROLES:
            raise InputFileError(
                f"{where}: {field!r} message {i} has role {m['role']!r}; "
                f"expected one of {', '.join(ROLES)}"
            )
        out.append({"role": m["role"], "content": m["content"]})
    return out


def from_messages(messages: Any, where: str) -> tuple[ChatPrompt, str | None]:
    """A ``messages`` conversation as (prompt, completion or ``None``).

    A final assistant turn is the completion; the prompt must then end with a user turn.

    Raises:
        InputFileError: malformed messages, or a conversation without a user turn to answer.
    """
    messages = check_messages(messages, where, "messages")
    completion = None
    if messages[-1]["role"] == "assistant":
        completion = messages.pop()["content"]
    return _prompt(messages, where, "messages"), completion


def from_conversational(prompt: Any, completion: Any, where: str) -> tuple[ChatPrompt, Any]:
    """TRL's conversational ``prompt`` (messages) and ``completion`` (one assistant message, a
    string, or absent) as (prompt, completion).

    Raises:
        InputFileError: malformed messages, or a completion that is not one assistant turn.
    """
    messages = check_messages(prompt, where, "prompt")
    if isinstance(completion, list):
        turns = check_messages(completion, where, "completion")
        if len(turns) != 1 or turns[0]["role"] != "assistant":
            raise InputFileError(f"{where}: 'completion' must be one assistant message")
        completion = turns[0]["content"]
    return _prompt(messages, where, "prompt"), completion


def _prompt(messages: list[dict[str, str]], where: str, field: str) -> ChatPrompt:
    if not messages or messages[-1]["role"] != "user":
        raise InputFileError(
            f"{where}: {field!r} must end with a user message (the turn the model answers)"
        )
    return ChatPrompt(messages, where)
