"""Envelopes of event types besides chat: built from a stored row, encoded, decoded by
decode_any, refused by both codecs when their type is not registered."""

from __future__ import annotations

import json
import string
from datetime import timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from chat_outbox.adapters.codec import FastEnvelopeCodec
from chat_outbox.application.record.recording import payload_of
from chat_outbox.domain import (
    BIZ_TYPE_CHAT_HISTORY,
    ChatMessage,
    Envelope,
    EventType,
    InvalidChatMessage,
    MalformedEnvelope,
)
from chat_outbox.domain.envelope import (
    AnyEnvelope,
    EventEnvelope,
    PlainEnvelopeCodec,
    decode_any,
)
from chat_outbox.domain.events import Event
from chat_outbox.domain.outbox import OutboxMessage
from tests.unit.conftest import T0, make_outbox_message

pytestmark = pytest.mark.unit

FINISHED = "agent_run.finished"
EVENT_ID = "00000000-0000-0000-0000-000000000029"

WORD = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(string.ascii_lowercase),
    st.text(alphabet=string.ascii_lowercase + string.digits + "_", max_size=8),
)
TYPE_NAMES = (
    st.lists(WORD, min_size=1, max_size=4)
    .map(".".join)
    .filter(lambda name: len(name) <= 64 and name != BIZ_TYPE_CHAT_HISTORY)
)
KEYS = st.text(
    st.characters(exclude_categories=("C", "Z")) | st.just(" "),
    min_size=1,
    max_size=128,
)
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


def compact(value: Any) -> str:
    """The payload text as recorded (EventType.payload_text)."""
    return EventType("any.type").payload_text(value)


def event_row(
    payload: Any = None, biz_type: str = FINISHED, message_key: str = "run-7", **changes: Any
) -> OutboxMessage:
    stored = compact({"run_id": 7, "ok": True} if payload is None else payload)
    return make_outbox_message(
        biz_type=biz_type, message_key=message_key, payload=stored, **changes
    )


def event_document(**changes: Any) -> dict[str, Any]:
    """A valid event envelope as a JSON document, with `changes` applied."""
    document: dict[str, Any] = json.loads(EventEnvelope.for_outbox_message(event_row()).encode())
    document.update(changes)
    return document


def encoded(document: dict[str, Any]) -> bytes:
    """As JSON, non-ASCII escaped (so a lone surrogate reaches the checks as one)."""
    return json.dumps(document).encode()


# --- round trip ------------------------------------------------------------------------


def test_event_envelope_of_a_row_carries_the_row_identity_and_parsed_payload() -> None:
    built = EventEnvelope.for_outbox_message(event_row({"run_id": 7, "steps": [1, 2]}))

    assert built == EventEnvelope(
        event_id=EVENT_ID,
        type=FINISHED,
        schema_version=1,
        occurred_at=T0,
        key="run-7",
        outbox_id=41,
        payload={"run_id": 7, "steps": [1, 2]},
    )
    assert built.event == Event(FINISHED, "run-7", {"run_id": 7, "steps": [1, 2]}, EVENT_ID, 41)
    assert (built.provenance.biz_type, built.provenance.message_key) == (FINISHED, "run-7")


@settings(max_examples=150, deadline=None)
@given(
    payload=JSON_VALUES,
    key=KEYS,
    biz_type=TYPE_NAMES,
    outbox_id=st.integers(min_value=1, max_value=2**63 - 1),
    microseconds=st.integers(min_value=0, max_value=10**12),
    offset=OFFSETS,
)
def test_event_envelope_encode_then_decode_any_gives_it_back_equal(
    payload: Any,
    key: str,
    biz_type: str,
    outbox_id: int,
    microseconds: int,
    offset: timezone,
) -> None:
    """Every field survives the trip: type, key, ids, time (any offset) and any JSON payload."""
    row = event_row(
        payload,
        biz_type=biz_type,
        message_key=key,
        id=outbox_id,
        created_at=(T0 + timedelta(microseconds=microseconds)).astimezone(offset),
    )
    built = EventEnvelope.for_outbox_message(row)

    decoded = decode_any(built.encode())

    assert isinstance(decoded, EventEnvelope)
    assert decoded == built
    assert decoded.payload == json.loads(row.payload)


def chat_row(conversation_id: str = "conv-1", message: str = "hello") -> OutboxMessage:
    payload = json.dumps(
        {"user_id": 7, "conversation_id": conversation_id, "role": "user", "message": message},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return make_outbox_message(message_key=conversation_id, payload=payload)


@given(
    conversation_id=st.text(
        st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=30
    ),
    message=st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=60),
)
def test_decode_any_of_a_chat_record_is_what_envelope_decode_gives(
    conversation_id: str, message: str
) -> None:
    try:
        chat = ChatMessage.create(
            user_id=7, conversation_id=conversation_id, role="user", message=message
        )
    except InvalidChatMessage:
        assume(False)
    row = make_outbox_message(message_key=chat.conversation_id, payload=payload_of(chat))
    data = Envelope.for_outbox_message(row).encode()

    decoded = decode_any(data)

    assert isinstance(decoded, Envelope)
    assert decoded == Envelope.decode(data) == Envelope.for_outbox_message(row)


def test_decode_any_of_a_chat_record_refuses_what_envelope_decode_refuses() -> None:
    """A chat record whose key is not its conversation is refused alike by both."""
    document = json.loads(Envelope.for_outbox_message(chat_row()).encode())
    document["key"] = "conv-2"
    data = encoded(document)

    with pytest.raises(MalformedEnvelope) as by_decode:
        Envelope.decode(data)
    with pytest.raises(MalformedEnvelope) as by_decode_any:
        decode_any(data)
    assert (
        str(by_decode_any.value)
        == str(by_decode.value)
        == ("key does not match the payload's conversation_id")
    )


@given(TYPE_NAMES)
def test_envelope_decode_still_refuses_a_record_of_another_type(biz_type: str) -> None:
    data = EventEnvelope.for_outbox_message(event_row(biz_type=biz_type)).encode()

    with pytest.raises(MalformedEnvelope, match="unknown message type"):
        Envelope.decode(data)


# --- hostile bytes ---------------------------------------------------------------------


def deep_json(depth: int, opener: str) -> str:
    """A JSON value `depth` arrays (or objects) deep."""
    if opener == "[":
        return "[" * depth + "]" * depth
    return opener * depth + "1" + "}" * depth


def mutated(data: bytes, changes: list[tuple[int, int]], cut: int | None) -> bytes:
    """`data` with some bytes overwritten and perhaps cut short."""
    buffer = bytearray(data)
    for where, byte in changes:
        buffer[where % len(buffer)] = byte
    return bytes(buffer if cut is None else buffer[: cut % (len(buffer) + 1)])


VALID_EVENT_RECORDS = st.builds(
    lambda payload, key, kind: EventEnvelope.for_outbox_message(
        event_row(payload, biz_type=kind, message_key=key)
    ).encode(),
    JSON_VALUES,
    KEYS,
    TYPE_NAMES,
)
MUTATED_RECORDS = st.builds(
    mutated,
    VALID_EVENT_RECORDS | st.just(Envelope.for_outbox_message(chat_row()).encode()),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=4),
    st.none() | st.integers(min_value=0),
)
REPLACED_FIELD = st.builds(
    lambda name, value: encoded(event_document(**{name: value})),
    st.sampled_from(
        ["event_id", "type", "schema_version", "occurred_at", "key", "outbox_id", "payload"]
    ),
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(st.characters(exclude_categories=()), max_size=70),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=10,
    ),
)
DEEP = st.builds(
    lambda depth, opener: (
        '{"event_id":"' + EVENT_ID + '","type":"a.b","schema_version":1,'
        '"occurred_at":"2026-01-01T00:00:00+00:00","key":"k","outbox_id":1,"payload":'
        + deep_json(depth, opener)
        + "}"
    ).encode(),
    st.integers(min_value=1, max_value=100_000),
    st.sampled_from(["[", '{"a":']),
)


def assert_an_envelope_or_malformed(data: bytes) -> None:
    try:
        decoded: AnyEnvelope = decode_any(data)
    except MalformedEnvelope as error:
        str(error).encode("utf-8")  # the reason goes into a header and a log line as is
    else:
        assert isinstance(decoded, Envelope | EventEnvelope)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300) | MUTATED_RECORDS | REPLACED_FIELD | DEEP)
def test_decode_any_of_any_bytes_gives_an_envelope_or_raises_malformed_envelope_only(
    data: bytes,
) -> None:
    """Arbitrary bytes, valid records with bytes overwritten or cut, any field replaced by
    any JSON, and payloads nested up to 100 000 deep: never anything but MalformedEnvelope."""
    assert_an_envelope_or_malformed(data)


@given(st.binary(max_size=300).filter(lambda data: not data.lstrip().startswith(b"{")))
def test_decode_any_of_bytes_that_are_not_a_json_object_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedEnvelope):
        decode_any(data)


@pytest.mark.parametrize(
    "biz_type", ["Agent.Finished", "agent run", "agent..run", ".a", "1a", "a" * 65, 7, None]
)
def test_decode_any_refuses_an_event_record_with_a_bad_type_name(biz_type: object) -> None:
    with pytest.raises(MalformedEnvelope, match=r"event type must (be dotted|be at most)"):
        decode_any(encoded(event_document(type=biz_type)))


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "event key must be 1-128 characters"),
        ("k" * 129, "event key must be 1-128 characters"),
        ("run\n7", "event key has a control, format or invisible character"),
        ("run\u200b7", "event key has a control, format or invisible character"),
        ("run\ud8007", "event key has a control, format or invisible character"),
        (7, "event key must be a string, got int"),
        (None, "event key must be a string, got NoneType"),
    ],
)
def test_decode_any_refuses_an_event_record_with_a_bad_key_naming_it(
    key: object, reason: str
) -> None:
    with pytest.raises(MalformedEnvelope) as refused:
        decode_any(encoded(event_document(key=key)))

    assert str(refused.value) == reason


def test_decode_any_leaves_an_event_payload_to_its_type() -> None:
    """Any JSON payload decodes: its type's validator checks it where the type is known."""
    decoded = decode_any(encoded(event_document(payload=[None, {"x": 1.5}])))

    assert isinstance(decoded, EventEnvelope)
    assert decoded.payload == [None, {"x": 1.5}]


# --- the codecs' registered types -------------------------------------------------------


@pytest.mark.parametrize(
    "codec",
    [PlainEnvelopeCodec(types=frozenset()), FastEnvelopeCodec(types=frozenset())],
    ids=["plain", "fast"],
)
def test_codec_without_the_type_registered_refuses_its_row(
    codec: PlainEnvelopeCodec | FastEnvelopeCodec,
) -> None:
    with pytest.raises(MalformedEnvelope) as refused:
        codec.encode(event_row())

    assert "unknown event type 'agent_run.finished'" in str(refused.value)
    assert "registered" in str(refused.value)


@pytest.mark.parametrize("codec_class", [PlainEnvelopeCodec, FastEnvelopeCodec])
def test_codec_registering_other_types_still_refuses_the_row(
    codec_class: type[PlainEnvelopeCodec] | type[FastEnvelopeCodec],
) -> None:
    codec = codec_class(types=frozenset({"agent_run.started", "agent_run"}))

    with pytest.raises(MalformedEnvelope, match="unknown event type"):
        codec.encode(event_row())


def test_codec_with_the_type_registered_encodes_its_row() -> None:
    data = PlainEnvelopeCodec(types=frozenset({FINISHED})).encode(event_row({"run_id": 7}))

    assert decode_any(data) == EventEnvelope.for_outbox_message(event_row({"run_id": 7}))
    assert json.loads(data)["payload"] == {"run_id": 7}


def test_codec_encodes_chat_rows_without_any_type_registered() -> None:
    row = chat_row()
    expected = Envelope.for_outbox_message(row).encode()

    assert PlainEnvelopeCodec(types=frozenset()).encode(row) == expected
    assert FastEnvelopeCodec(types=frozenset()).encode(row) == expected


@settings(max_examples=150, deadline=None)
@given(
    payload=JSON_VALUES,
    key=KEYS,
    biz_type=TYPE_NAMES,
    outbox_id=st.integers(min_value=1, max_value=2**63 - 1),
    microseconds=st.integers(min_value=0, max_value=10**12),
)
def test_fast_codec_encodes_an_event_row_to_the_plain_codec_bytes(
    payload: Any, key: str, biz_type: str, outbox_id: int, microseconds: int
) -> None:
    """For a stored payload in compact JSON (as recorded), byte for byte the same."""
    types = frozenset({biz_type})
    row = event_row(
        payload,
        biz_type=biz_type,
        message_key=key,
        id=outbox_id,
        created_at=T0 + timedelta(microseconds=microseconds),
    )

    assert FastEnvelopeCodec(types=types).encode(row) == PlainEnvelopeCodec(types=types).encode(row)


@given(biz_type=TYPE_NAMES, registered=st.frozensets(TYPE_NAMES, max_size=3))
def test_fast_and_plain_codecs_refuse_an_unregistered_type_alike(
    biz_type: str, registered: frozenset[str]
) -> None:
    types = registered - {biz_type}
    row = event_row(biz_type=biz_type)

    with pytest.raises(MalformedEnvelope) as by_plain:
        PlainEnvelopeCodec(types=types).encode(row)
    with pytest.raises(MalformedEnvelope) as by_fast:
        FastEnvelopeCodec(types=types).encode(row)
    assert str(by_fast.value) == str(by_plain.value)


@pytest.mark.parametrize(
    "stored",
    ["{not json", "", '{"a":1} {}', "NaN-ish", "[1,2", '"unterminated'],
    ids=["broken", "empty", "two-values", "word", "unclosed", "string"],
)
@pytest.mark.parametrize("codec_class", [PlainEnvelopeCodec, FastEnvelopeCodec])
def test_codecs_refuse_a_stored_event_payload_that_is_not_json(
    codec_class: type[PlainEnvelopeCodec] | type[FastEnvelopeCodec], stored: str
) -> None:
    codec = codec_class(types=frozenset({FINISHED}))
    row = make_outbox_message(biz_type=FINISHED, message_key="run-7", payload=stored)

    with pytest.raises(MalformedEnvelope) as refused:
        codec.encode(row)

    assert str(refused.value) == "outbox row 41 has a bad payload: not JSON"


@pytest.mark.parametrize("opener", ["[", '{"a":'])
@pytest.mark.parametrize("codec_class", [PlainEnvelopeCodec, FastEnvelopeCodec])
def test_codecs_refuse_a_stored_event_payload_too_deep_to_parse_alike(
    codec_class: type[PlainEnvelopeCodec] | type[FastEnvelopeCodec], opener: str
) -> None:
    """A stored payload nested 100 000 deep cannot be parsed: both codecs call the row
    malformed (so the relay sends it dead) rather than raising RecursionError."""
    stored = deep_json(100_000, opener)
    row = make_outbox_message(biz_type=FINISHED, message_key="run-7", payload=stored)

    with pytest.raises(MalformedEnvelope, match="outbox row 41 has a bad payload: not JSON"):
        codec_class(types=frozenset({FINISHED})).encode(row)
