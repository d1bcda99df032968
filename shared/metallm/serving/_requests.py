"""What the adapters read off a framework call, by one rule for every framework.

The text a chat request is routed on, a completion prompt's check, and the session a call
belongs to.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from metallm.exceptions import EmptyQueryError

__all__ = [
    "CONVERSATION",
    "DEFAULT_SESSION_KEY",
    "check_prompt",
    "conversation_id",
    "pop_session",
    "routing_text",
]

DEFAULT_SESSION_KEY = "session_id"
"""The name both adapters read a call's session from, when sessions are on."""

CONVERSATION = "conversation"
"""``session_key=CONVERSATION``: the conversation itself is the session (see `conversation_id`),
for frameworks that carry the history but no session id (chat engines, message-history wrappers)."""


def routing_text(turns: Iterable[tuple[bool, str]]) -> str:
    """The text the router routes on: the last user turn's, else every turn's joined.

    Args:
        turns: ``(from_user, text)`` for each message.

    Returns:
        The routing text.

    Raises:
        EmptyQueryError: No turn holds text.

    >>> routing_text([(False, "You are terse."), (True, "What is 2 + 2?")])
    'What is 2 + 2?'
    """
    texts = [(from_user, text) for from_user, text in turns if text and text.strip()]
    for from_user, text in reversed(texts):
        if from_user:
            return text
    if not texts:
        raise EmptyQueryError("the messages hold no text for the router to route on")
    return "\n".join(text for _, text in texts)


def check_prompt(prompt: object) -> str:
    """A completion prompt, checked.

    Args:
        prompt: What the framework was asked to complete.

    Returns:
        The prompt.

    Raises:
        EmptyQueryError: It is not text, or holds none.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise EmptyQueryError("the prompt is empty: the router needs text to route on")
    return prompt


def conversation_id(turns: Iterable[tuple[str, str]]) -> str | None:
    """An id for a conversation: a hash of its system prompt and first user turn.

    Every turn of a chat carries the history, so each call of one conversation gets the same
    id, and sticky routing keeps it on one model.

    Args:
        turns: The conversation's ``(role, text)`` turns.

    Returns:
        The id, or None without a user turn.

    >>> first = conversation_id([("system", "Be brief."), ("user", "Hi!")])
    >>> first == conversation_id([("system", "Be brief."), ("user", "Hi!"), ("assistant", "Hello."), ("user", "And?")])
    True
    """
    system, first_user = [], None
    for role, text in turns:
        if role == "system":
            system.append(text)
        elif role == "user":
            first_user = text
            break
    if first_user is None:
        return None
    digest = hashlib.blake2b(
        "\x00".join([*system, first_user]).encode("utf-8", "replace"), digest_size=12
    )
    return f"conversation-{digest.hexdigest()}"


def pop_session(
    session_key: str | None,
    options: MutableMapping[str, Any],
    *sources: Mapping[str, Any],
    legacy_key: str | None = None,
    conversation: str | None = None,
) -> str | None:
    """The session of a call, or None: sticky routing keeps a session on one model.

    With ``session_key`` set, the value is the call option of that name (popped from
    ``options``, so the model never sees it), else the first of ``sources`` (run metadata,
    instrumentation tags, ...) that has it. ``legacy_key`` is an older option name, still
    honoured with a `DeprecationWarning` when ``session_key`` is not set. With
    ``session_key=CONVERSATION`` the session is ``conversation`` (see `conversation_id`).

    Args:
        session_key: The option naming the session (None: no session, unless ``legacy_key``).
        options: The call's options (the session's is popped).
        sources: Other places the session may be, in order (run metadata, tags).
        legacy_key: An older option name, honoured with a warning.
        conversation: The conversation's id, when ``session_key`` is ``CONVERSATION``.

    Returns:
        The session, as text, or None.

    >>> pop_session("session_id", {"session_id": "abc", "temperature": 0})
    'abc'
    >>> pop_session("thread_id", {}, {"thread_id": 7})
    '7'
    """
    value = None
    if session_key == CONVERSATION:
        value = conversation
    elif session_key is not None:
        value = options.pop(session_key, None)
        for source in sources:
            if value is not None:
                break
            value = source.get(session_key)
    if legacy_key is not None and legacy_key in options:
        legacy = options.pop(legacy_key)
        if value is None and session_key is None:
            warnings.warn(
                f"{legacy_key}= without session_key is deprecated: set session_key={legacy_key!r} "
                "on the router model (the same spelling in both adapters)",
                DeprecationWarning,
                stacklevel=4,
            )
            value = legacy
    return None if value is None else str(value)
