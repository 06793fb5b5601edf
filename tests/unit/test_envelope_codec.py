"""The fast envelope codec (adapters.codec) gives what the domain's envelope rules give:
the relay's encoding of a stored row, and the consumer's decoding of a record."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from chat_outbox.adapters.codec import FastEnvelopeCodec
from chat_outbox.application.record.recording import payload_of
from chat_outbox.domain import ChatMessage, Envelope, InvalidChatMessage, MalformedEnvelope
from chat_outbox.domain.envelope import AnyEnvelope, PlainEnvelopeCodec
from tests.unit.conftest import T0, make_outbox_message

pytestmark = pytest.mark.unit

CODEC = FastEnvelopeCodec()
RULES = PlainEnvelopeCodec()


# Drawn valid (no control characters or lone surrogates; tab, newline and return allowed in
# the text) rather than filtered: filtering threw away most draws, and Hypothesis's health
# check failed the test about one run in ten.
PRINTABLE = st.characters(exclude_categories=("Cc", "Cs"))


@given(
    conversation_id=st.text(PRINTABLE, min_size=1, max_size=40),
    text=st.text(PRINTABLE | st.sampled_from("\t\n\r"), max_size=60),
    outbox_id=st.integers(min_value=1, max_value=2**63 - 1),
    microseconds=st.integers(min_value=0, max_value=10**12),
)
def test_stored_encoding_is_the_envelope_encoding(
    conversation_id: str, text: str, outbox_id: int, microseconds: int
) -> None:
    """Whatever the text and conversation (quotes, escapes, non-ASCII), the relay's encoding of
    a recorded row is byte for byte the encoding of its envelope."""
    try:
        chat = ChatMessage.create(
            user_id=7, conversation_id=conversation_id, role="user", message=text
        )
    except InvalidChatMessage:
        assume(False)
    row = make_outbox_message(
        id=outbox_id,
        message_key=conversation_id,
        payload=payload_of(chat),
        created_at=T0 + timedelta(microseconds=microseconds),
    )

    assert CODEC.encode(row) == RULES.encode(row)


@pytest.mark.parametrize(
    "payload",
    [
        "{not json",
        '{"user_id":7,"conversation_id":"conv-1","role":"user","message":"hi"} {}',
        '[{"conversation_id":"conv-1"}]',
        '"conv-1"',
        '{"user_id":7,"conversation_id":"conv-2","role":"user","message":"hi"}',
    ],
    ids=["not-json", "two-values", "array", "string", "other-conversation"],
)
def test_stored_payload_that_is_not_an_object_of_its_conversation_is_malformed(
    payload: str,
) -> None:
    """A row whose payload is not one JSON object of the row's conversation cannot be sent."""
    with pytest.raises(MalformedEnvelope, match="outbox row 41 has a bad payload"):
        CODEC.encode(make_outbox_message(payload=payload))


def test_stored_payload_with_whitespace_around_it_is_sent_as_stored() -> None:
    """Whitespace around a stored payload is valid JSON, so the row is sent, not killed."""
    row = make_outbox_message()
    padded = make_outbox_message(payload=f" {row.payload}\n")

    encoded = CODEC.encode(padded)

    assert encoded.endswith(f'"payload": {row.payload}\n}}'.encode())
    assert Envelope.decode(encoded) == Envelope.for_outbox_message(row)


def _outcome(decode: Callable[[bytes], AnyEnvelope], data: bytes) -> AnyEnvelope | type[Exception]:
    try:
        return decode(data)
    except MalformedEnvelope:
        return MalformedEnvelope


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(st.tuples(st.sampled_from(["a", "b", "message", "payload"]), inner), max_size=3)
    ),
    max_leaves=12,
)


def _members(pairs: list[tuple[str, object]]) -> str:
    """A JSON object's text from (key, value) pairs, keeping repeated keys."""
    return "{" + ",".join(f"{json.dumps(k)}:{_text(v)}" for k, v in pairs) + "}"


def _text(value: object) -> str:
    if isinstance(value, list) and value and all(isinstance(p, tuple) for p in value):
        return _members(value)
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return json.dumps(value)


@given(
    message=st.text(PRINTABLE | st.sampled_from('"\\:{}'), max_size=40),
    repeat=st.sampled_from([None, "event_id", "key", "payload", "message", "role"]),
    extra=st.lists(
        st.tuples(st.sampled_from(["message", "x", "payload"]), JSON_VALUES), max_size=2
    ),
)
def test_fast_decoding_gives_what_the_rules_give(
    message: str, repeat: str | None, extra: list[tuple[str, object]]
) -> None:
    """Whatever the text, a repeated key at either level, or extra members (nested objects
    with repeated keys among them), the fast codec returns the same envelope as the rules,
    or refuses when they refuse."""
    row = make_outbox_message()
    document = json.loads(RULES.encode(row))
    payload = {**document["payload"], "message": message}
    payload_pairs: list[tuple[str, object]] = list(payload.items())
    pairs: list[tuple[str, object]] = [(k, v) for k, v in document.items() if k != "payload"]
    if repeat is None:
        pass
    elif repeat in payload:
        payload_pairs.append((repeat, payload[repeat]))
    else:
        pairs.append((repeat, document[repeat]))
    pairs.append(("payload", payload_pairs + [p for p in extra if p[0] == "x"]))
    pairs += [p for p in extra if p[0] != "x"]
    data = _members(pairs).encode()

    assert _outcome(CODEC.decode, data) == _outcome(RULES.decode, data)


@given(st.binary(max_size=64) | JSON_VALUES.map(lambda v: _text(v).encode()))
def test_fast_decoding_refuses_what_the_rules_refuse(data: bytes) -> None:
    """Arbitrary bytes and JSON values that are no envelope: both refuse."""
    assert _outcome(CODEC.decode, data) == _outcome(RULES.decode, data)


def test_a_repeated_key_is_refused_by_the_fast_decoding() -> None:
    """The plain parse would keep the last of two `message` members; the codec refuses."""
    row = make_outbox_message()
    text = RULES.encode(row).decode()
    forged = text.replace('"message":', '"message":"first","message":', 1).encode()

    with pytest.raises(MalformedEnvelope, match="duplicate field 'message'"):
        CODEC.decode(forged)
