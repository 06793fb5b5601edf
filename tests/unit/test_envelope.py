"""The envelope codec: round trip, and the precise reason for every rejected record."""

from __future__ import annotations

import json
from datetime import timedelta, timezone

import pytest

from chat_outbox.domain import Envelope, MalformedEnvelope, OutboxStatus, Role
from tests.unit.conftest import T0, make_outbox_message

pytestmark = pytest.mark.unit

EVENT_ID = "00000000-0000-0000-0000-000000000029"


def envelope(message: str = "hello") -> Envelope:
    payload = json.dumps(
        {"user_id": 7, "conversation_id": "conv-1", "role": "user", "message": message}
    )
    return Envelope.for_outbox_message(make_outbox_message(payload=payload))


def document(**changes: object) -> dict[str, object]:
    """A valid envelope as a JSON document, with `changes` applied."""
    decoded: dict[str, object] = json.loads(envelope().encode())
    decoded.update(changes)
    return decoded


def encoded(doc: dict[str, object]) -> bytes:
    return json.dumps(doc).encode()


def without(name: str) -> dict[str, object]:
    doc = document()
    del doc[name]
    return doc


def test_envelope_from_outbox_row_carries_row_identity() -> None:
    """The envelope of a row has its event id, type, key, outbox id and creation time."""
    built = envelope()

    assert (built.event_id, built.type, built.key, built.outbox_id, built.occurred_at) == (
        EVENT_ID,
        "chat_history_persist",
        "conv-1",
        41,
        T0,
    )
    assert (built.schema_version, built.payload.role, built.payload.message) == (
        1,
        Role.USER,
        "hello",
    )


@pytest.mark.parametrize(
    "text",
    ["hello", "héllo wörld", "你好，世界", "emoji 🙂👍🏽 and ZWJ 👩‍💻", "", 'line\nbreak\t"q"'],
)
def test_encode_then_decode_round_trips(text: str) -> None:
    """Decoding an encoded envelope gives back an equal envelope, whatever the text."""
    original = envelope(text)

    assert Envelope.decode(original.encode()) == original


def test_encode_keeps_non_ascii_text_as_utf8() -> None:
    """Non-ASCII text is written as UTF-8, not as \\u escapes."""
    assert "🙂".encode() in envelope("🙂").encode()


def test_envelope_from_row_with_corrupt_payload_is_malformed() -> None:
    """A stored row whose payload no longer parses cannot become an envelope."""
    row = make_outbox_message(OutboxStatus.PENDING, payload="{not json")

    with pytest.raises(MalformedEnvelope, match="outbox row 41 has a bad payload"):
        Envelope.for_outbox_message(row)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty record"),
        (b'{"a": "\xff"}', "not valid UTF-8 at byte 7"),
        (b"hello", "not JSON: Expecting value at line 1 column 1"),
        (b'{"event_id": ', "not JSON: Expecting value"),
        (b"[1, 2]", "envelope must be a JSON object, got list"),
        (b'"text"', "envelope must be a JSON object, got str"),
        (b"null", "envelope must be a JSON object, got NoneType"),
        (b'{"outbox_id": NaN}', "not JSON: NaN is not allowed"),
        (b'{"outbox_id": -Infinity}', "not JSON: -Infinity is not allowed"),
        (b'{"key": "a", "key": "b"}', "duplicate field 'key'"),
    ],
    ids=[
        "empty",
        "invalid-utf8",
        "not-json",
        "truncated-json",
        "array",
        "string",
        "null",
        "nan",
        "infinity",
        "duplicate-key",
    ],
)
def test_decode_rejects_bytes_that_are_not_a_json_object(data: bytes, reason: str) -> None:
    """Bytes that are not one strict JSON object are malformed, with the precise reason."""
    with pytest.raises(MalformedEnvelope, match=reason):
        Envelope.decode(data)


def test_decode_rejects_duplicate_key_inside_payload() -> None:
    """Duplicate keys are refused at any depth, so no reader can pick a different value."""
    data = envelope().encode().replace(b'"role":"user"', b'"role":"user","role":"system"')

    with pytest.raises(MalformedEnvelope, match="duplicate field 'role'"):
        Envelope.decode(data)


def test_decode_rejects_a_duplicate_key_spaced_before_its_colon() -> None:
    """The fast parse's key count also sees keys written as `"name" :`."""
    data = envelope().encode().replace(b'"role":"user"', b'"role":"user", "role" \t: "tool"')

    with pytest.raises(MalformedEnvelope, match="duplicate field 'role'"):
        Envelope.decode(data)


def test_decode_accepts_a_message_quoting_a_key_like_text() -> None:
    """An escaped quote before a colon inside a message is text, not a repeated key."""
    tricky = 'he said "role": "admin" and left'

    assert Envelope.decode(envelope(tricky).encode()).payload.message == tricky


@pytest.mark.parametrize(
    "name", ["event_id", "type", "schema_version", "occurred_at", "key", "outbox_id", "payload"]
)
def test_decode_rejects_missing_field(name: str) -> None:
    """Every envelope field is required."""
    with pytest.raises(MalformedEnvelope, match=f"envelope is missing field '{name}'"):
        Envelope.decode(encoded(without(name)))


def test_decode_rejects_extra_field() -> None:
    """A field outside the schema is refused rather than silently ignored."""
    with pytest.raises(MalformedEnvelope, match="envelope has unexpected field 'trace'"):
        Envelope.decode(encoded(document(trace="abc")))


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("event_id", "event_id must be a string"),
        ("type", "unknown message type None"),
        ("schema_version", "unsupported schema version None"),
        ("occurred_at", "occurred_at must be a string"),
        ("key", "key must be a string"),
        ("outbox_id", "outbox_id must be a positive integer"),
        ("payload", "invalid payload: payload must be an object, got null"),
    ],
)
def test_decode_rejects_null_field(name: str, reason: str) -> None:
    """A null in any field is refused with that field's reason."""
    with pytest.raises(MalformedEnvelope, match=reason):
        Envelope.decode(encoded(document(**{name: None})))


def test_decode_rejects_unknown_message_type() -> None:
    """Only chat_history_persist envelopes are understood."""
    with pytest.raises(MalformedEnvelope, match="unknown message type 'order_created'"):
        Envelope.decode(encoded(document(type="order_created")))


def test_decode_rejects_future_schema_version() -> None:
    """A newer schema version is refused, naming the version this reader knows."""
    with pytest.raises(
        MalformedEnvelope, match=r"unsupported schema version 2 \(this reader knows 1\)"
    ):
        Envelope.decode(encoded(document(schema_version=2)))


@pytest.mark.parametrize("version", [True, 1.0, "1"])
def test_decode_rejects_schema_version_that_only_looks_like_one(version: object) -> None:
    """true, 1.0 and "1" are not the integer 1."""
    with pytest.raises(MalformedEnvelope, match="unsupported schema version"):
        Envelope.decode(encoded(document(schema_version=version)))


@pytest.mark.parametrize("event_id", ["not-a-uuid", "", "1234"])
def test_decode_rejects_event_id_that_is_not_a_uuid(event_id: str) -> None:
    """The event id must be a UUID: it is the idempotency key of chat history."""
    with pytest.raises(MalformedEnvelope, match="event_id is not a UUID"):
        Envelope.decode(encoded(document(event_id=event_id)))


def test_decode_rejects_event_id_that_is_not_a_string() -> None:
    """A numeric event id is refused."""
    with pytest.raises(MalformedEnvelope, match="event_id must be a string"):
        Envelope.decode(encoded(document(event_id=41)))


def test_decode_rejects_naive_timestamp() -> None:
    """occurred_at must carry its timezone."""
    with pytest.raises(MalformedEnvelope, match="occurred_at has no timezone"):
        Envelope.decode(encoded(document(occurred_at="2026-01-01T12:00:00")))


def test_decode_rejects_timestamp_that_is_not_iso_8601() -> None:
    """occurred_at must be an ISO 8601 timestamp."""
    with pytest.raises(MalformedEnvelope, match="occurred_at is not ISO 8601: 'yesterday'"):
        Envelope.decode(encoded(document(occurred_at="yesterday")))


def test_decode_keeps_timestamp_offset() -> None:
    """A timestamp with a non-UTC offset decodes to the same instant."""
    moment = T0.astimezone(timezone(timedelta(hours=5, minutes=30)))

    decoded = Envelope.decode(encoded(document(occurred_at=moment.isoformat())))

    assert decoded.occurred_at == T0


def test_decode_rejects_key_that_differs_from_conversation_id() -> None:
    """The bus key must be the payload's conversation, or per-conversation order breaks."""
    with pytest.raises(MalformedEnvelope, match="key does not match the payload's conversation_id"):
        Envelope.decode(encoded(document(key="conv-2")))


@pytest.mark.parametrize("outbox_id", [0, -1, True, "41", 4.1])
def test_decode_rejects_outbox_id_that_is_not_a_positive_integer(outbox_id: object) -> None:
    """The outbox id must be a positive integer (booleans and floats excluded)."""
    with pytest.raises(MalformedEnvelope, match="outbox_id must be a positive integer"):
        Envelope.decode(encoded(document(outbox_id=outbox_id)))


@pytest.mark.parametrize(
    ("payload_changes", "reason"),
    [
        ({"role": "admin"}, "invalid payload: role must be one of"),
        ({"user_id": 0}, "invalid payload: user_id must be positive"),
        ({"user_id": True}, "invalid payload: user_id must be an integer, got bool"),
        ({"message": "a\x00b"}, "invalid payload: message contains a NUL character"),
        ({"conversation_id": ""}, "invalid payload: conversation_id must be 1-128 characters"),
        ({"extra": 1}, "invalid payload: payload has unexpected field 'extra'"),
    ],
)
def test_decode_rejects_invalid_payload_fields(
    payload_changes: dict[str, object], reason: str
) -> None:
    """The payload is validated like any chat message, and the error says it is the payload."""
    doc = document()
    payload = doc["payload"]
    assert isinstance(payload, dict)
    payload.update(payload_changes)

    with pytest.raises(MalformedEnvelope, match=reason):
        Envelope.decode(encoded(doc))


def test_decode_rejects_payload_missing_a_field() -> None:
    """A payload without its message is refused."""
    doc = document()
    payload = doc["payload"]
    assert isinstance(payload, dict)
    del payload["message"]

    with pytest.raises(
        MalformedEnvelope, match="invalid payload: payload is missing field 'message'"
    ):
        Envelope.decode(encoded(doc))


def test_decode_applies_the_message_size_limit() -> None:
    """A message over the reader's byte limit is refused."""
    data = envelope("é" * 10).encode()

    with pytest.raises(MalformedEnvelope, match="message is 20 bytes, over the limit of 19"):
        Envelope.decode(data, max_message_bytes=19)
