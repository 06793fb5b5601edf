"""ChatMessage.create: the validation rules for untrusted chat input."""

from __future__ import annotations

import pytest

from chat_outbox.domain import DEFAULT_MAX_MESSAGE_BYTES, ChatMessage, InvalidChatMessage, Role

pytestmark = pytest.mark.unit


def create(**overrides: object) -> ChatMessage:
    fields: dict[str, object] = {
        "user_id": 7,
        "conversation_id": "conv-1",
        "role": "user",
        "message": "hello",
    }
    fields.update(overrides)
    return ChatMessage.create(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("role", ["user", "assistant", "system", "tool"])
def test_each_known_role_is_accepted(role: str) -> None:
    """The four roles of an AI-agent chat are accepted and kept as Role members."""
    assert create(role=role).role is Role(role)


@pytest.mark.parametrize("role", ["admin", "User", "", None, 1])
def test_unknown_role_is_rejected_listing_the_allowed_ones(role: object) -> None:
    """Anything but the four role names is refused, and the error lists the allowed roles."""
    with pytest.raises(
        InvalidChatMessage, match="role must be one of user, assistant, system, tool"
    ):
        create(role=role)


@pytest.mark.parametrize("user_id", [1, 2**63 - 1])
def test_positive_64_bit_user_id_is_accepted(user_id: int) -> None:
    """User ids from 1 up to the largest signed 64-bit integer are valid."""
    assert create(user_id=user_id).user_id == user_id


@pytest.mark.parametrize(
    ("user_id", "reason"),
    [
        (True, "user_id must be an integer, got bool"),
        ("7", "user_id must be an integer, got str"),
        (7.0, "user_id must be an integer, got float"),
        (None, "user_id must be an integer, got null"),
        (0, "user_id must be positive, got 0"),
        (-3, "user_id must be positive, got -3"),
        (2**63, "user_id must fit in 64 bits"),
    ],
)
def test_invalid_user_id_is_rejected(user_id: object, reason: str) -> None:
    """A user id that is not a positive 64-bit int (bools included) is refused with the reason."""
    with pytest.raises(InvalidChatMessage, match=reason):
        create(user_id=user_id)


@pytest.mark.parametrize("conversation_id", ["c", "c" * 128, "会話-42", "conv with spaces"])
def test_conversation_id_of_1_to_128_printable_characters_is_accepted(
    conversation_id: str,
) -> None:
    """Conversation ids of 1 to 128 characters, non-ASCII included, are valid."""
    assert create(conversation_id=conversation_id).conversation_id == conversation_id


@pytest.mark.parametrize(
    ("conversation_id", "reason"),
    [
        ("", "conversation_id must be 1-128 characters, got 0"),
        ("c" * 129, "conversation_id must be 1-128 characters, got 129"),
        (42, "conversation_id must be a string, got int"),
        ("ab\ncd", r"control or surrogate character '\\n' at index 2"),
        ("\x00", "control or surrogate character .* at index 0"),
        ("a\x7f", "control or surrogate character .* at index 1"),
        ("ok\ud800", "control or surrogate character .* at index 2"),
    ],
)
def test_invalid_conversation_id_is_rejected(conversation_id: object, reason: str) -> None:
    """Empty, too long, non-string, control or surrogate ids are refused with the position."""
    with pytest.raises(InvalidChatMessage, match=reason):
        create(conversation_id=conversation_id)


def test_message_with_nul_is_rejected_at_its_index() -> None:
    """A NUL character (which PostgreSQL text cannot store) is refused with its index."""
    with pytest.raises(InvalidChatMessage, match="message contains a NUL character at index 3"):
        create(message="abc\x00def")


def test_message_with_lone_surrogate_is_rejected_at_its_index() -> None:
    """A lone surrogate (not encodable as UTF-8) is refused with its index."""
    with pytest.raises(InvalidChatMessage, match="lone surrogate at index 2"):
        create(message="hi\udc00there")


def test_non_string_message_is_rejected() -> None:
    """A message must be text."""
    with pytest.raises(InvalidChatMessage, match="message must be a string, got bytes"):
        create(message=b"hello")


def test_message_at_default_limit_is_accepted() -> None:
    """A message of exactly 512 KiB is within the default limit."""
    text = "a" * DEFAULT_MAX_MESSAGE_BYTES

    assert DEFAULT_MAX_MESSAGE_BYTES == 512 * 1024
    assert create(message=text).message == text


def test_message_over_default_limit_is_rejected_with_sizes() -> None:
    """One byte over 512 KiB is refused, naming the size and the limit."""
    with pytest.raises(
        InvalidChatMessage, match="message is 524289 bytes, over the limit of 524288 bytes"
    ):
        create(message="a" * (DEFAULT_MAX_MESSAGE_BYTES + 1))


def test_message_limit_is_configurable() -> None:
    """A caller-supplied limit replaces the default."""
    with pytest.raises(InvalidChatMessage, match="message is 11 bytes, over the limit of 10"):
        ChatMessage.create(
            user_id=1, conversation_id="c", role="user", message="a" * 11, max_message_bytes=10
        )


@pytest.mark.parametrize(("text", "size"), [("é" * 5, 10), ("€" * 4, 12), ("🙂" * 3, 12)])
def test_multibyte_message_at_the_byte_limit_is_accepted(text: str, size: int) -> None:
    """The limit counts UTF-8 bytes: multibyte text exactly at the limit passes."""
    message = ChatMessage.create(
        user_id=1, conversation_id="c", role="user", message=text, max_message_bytes=size
    )

    assert message.message == text


@pytest.mark.parametrize(("text", "size"), [("é" * 5, 9), ("€" * 4, 11), ("🙂" * 3, 11)])
def test_multibyte_message_one_byte_over_the_limit_is_rejected(text: str, size: int) -> None:
    """The limit counts UTF-8 bytes, not characters: one byte over is refused."""
    with pytest.raises(InvalidChatMessage, match=f"message is {size + 1} bytes"):
        ChatMessage.create(
            user_id=1, conversation_id="c", role="user", message=text, max_message_bytes=size
        )


def test_payload_round_trips_through_from_payload() -> None:
    """to_payload and from_payload are inverse for a valid message."""
    message = create(role="assistant", message="Here you go 🙂")

    assert ChatMessage.from_payload(message.to_payload()) == message


def test_payload_that_is_not_an_object_is_rejected() -> None:
    """A payload must be a JSON object."""
    with pytest.raises(InvalidChatMessage, match="payload must be an object, got list"):
        ChatMessage.from_payload([1, 2])


def test_payload_missing_a_field_is_rejected() -> None:
    """Every payload field is required."""
    with pytest.raises(InvalidChatMessage, match="payload is missing field 'role'"):
        ChatMessage.from_payload({"user_id": 1, "conversation_id": "c", "message": "m"})


def test_payload_with_an_extra_field_is_rejected() -> None:
    """No field beyond the four documented ones is accepted."""
    payload = {**create().to_payload(), "admin": True}

    with pytest.raises(InvalidChatMessage, match="payload has unexpected field 'admin'"):
        ChatMessage.from_payload(payload)
