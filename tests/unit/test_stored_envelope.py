"""The relay's envelope encoding of a stored row: the envelope's own bytes, or malformed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from chat_outbox.application.record.recording import payload_of
from chat_outbox.domain import ChatMessage, Envelope, InvalidChatMessage, MalformedEnvelope
from tests.unit.conftest import T0, make_outbox_message

pytestmark = pytest.mark.unit


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

    assert Envelope.encode_stored(row) == Envelope.for_outbox_message(row).encode()


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
        Envelope.encode_stored(make_outbox_message(payload=payload))


def test_stored_payload_with_whitespace_around_it_is_sent_as_stored() -> None:
    """Whitespace around a stored payload is valid JSON, so the row is sent, not killed."""
    row = make_outbox_message()
    padded = make_outbox_message(payload=f" {row.payload}\n")

    encoded = Envelope.encode_stored(padded)

    assert encoded.endswith(f'"payload": {row.payload}\n}}'.encode())
    assert Envelope.decode(encoded) == Envelope.for_outbox_message(row)
