"""Hostile text at the doors: control characters in messages, undecodable bytes from the CLI."""

from __future__ import annotations

import io
import sys

import pytest

from chat_outbox.domain import ChatMessage, InvalidChatMessage
from chat_outbox.entrypoints.commands import stdin_text, utf8_argument

pytestmark = pytest.mark.unit


def message(text: str) -> ChatMessage:
    return ChatMessage.create(user_id=1, conversation_id="c", role="user", message=text)


@pytest.mark.parametrize(
    ("text", "code", "index"),
    [
        ("a\x1b[31mred", "001B", 1),
        ("\x07", "0007", 0),
        ("ok\x7f", "007F", 2),
        ("c1\x85", "0085", 2),
    ],
)
def test_control_characters_in_a_message_are_refused_by_code_point(
    text: str, code: str, index: int
) -> None:
    """Escape sequences, bells, DEL and C1 codes are refused, naming the code point and index."""
    with pytest.raises(InvalidChatMessage, match=f"control character U\\+{code} at index {index}"):
        message(text)


def test_tab_newline_and_carriage_return_are_ordinary_message_text() -> None:
    """Layout characters stay allowed: chat messages have lines and tables."""
    assert message("col\tcol\r\nline 2\n").message == "col\tcol\r\nline 2\n"


def test_stdin_over_the_limit_is_refused_without_reading_it_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 10 MB body on stdin is refused, and only one byte past the limit was read."""
    stream = io.BytesIO(b"a" * 10 * 1024 * 1024)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stream))
    with pytest.raises(InvalidChatMessage, match="over the limit of 1024 bytes"):
        stdin_text(1024)
    assert stream.tell() == 1025


def test_invalid_utf8_on_stdin_is_named_with_its_byte_offset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Undecodable bytes on stdin are a one-line usage error, whatever the locale."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"ab\xffcd")))
    with pytest.raises(InvalidChatMessage, match="message is not valid UTF-8 at byte 2"):
        stdin_text(1024)


def test_undecodable_argv_bytes_are_reported_as_invalid_utf8() -> None:
    """argv bytes Python smuggled in as surrogates are reported as invalid UTF-8."""
    smuggled = b"conv\xff".decode("utf-8", "surrogateescape")
    with pytest.raises(InvalidChatMessage, match="conversation_id is not valid UTF-8 at byte 4"):
        utf8_argument("conversation_id", smuggled)


def test_ordinary_unicode_arguments_pass_unchanged() -> None:
    """Non-ASCII text that is valid UTF-8 is not touched."""
    assert utf8_argument("message", "héllo 👋") == "héllo 👋"
