"""The envelope codec the relay and the consumer run: the domain's envelope rules
(domain.envelope), with the two costs of their hot paths cut. Both give exactly what the
domain's own encode and decode give (tests/unit/test_envelope_codec.py compares them)."""

from __future__ import annotations

import json
import re
from json.encoder import encode_basestring
from typing import Any

import attrs

from chat_outbox.domain import BIZ_TYPE_CHAT_HISTORY, MalformedEnvelope, OutboxMessage
from chat_outbox.domain.chat import DEFAULT_MAX_MESSAGE_BYTES
from chat_outbox.domain.envelope import (
    SCHEMA_VERSION,
    AnyEnvelope,
    decode_any,
    parse_json,
    refuse_unknown_type,
)

_KEY_END = re.compile(r'"\s*:')
_ANY = json.JSONDecoder()  # json.loads' own, built once
_quoted = encode_basestring  # a JSON string as the compact (ensure_ascii=False) encoder writes it


@attrs.frozen
class FastEnvelopeCodec:
    """Encodes around the stored payload text instead of re-validating it (it was validated
    when recorded), and parses records with the C parser, re-parsing strictly only when a
    key may repeat. `types`: as PlainEnvelopeCodec's."""

    types: frozenset[str] = frozenset()

    def encode(self, message: OutboxMessage) -> bytes:
        """The bytes of PlainEnvelopeCodec(types).encode(message); a chat payload that is no
        longer a JSON object of the row's conversation is malformed."""
        if message.biz_type != BIZ_TYPE_CHAT_HISTORY:
            refuse_unknown_type(message, self.types)
            _stored_payload(message)  # JSON, or malformed
        else:
            payload = _stored_payload(message)
            if (
                not isinstance(payload, dict)
                or payload.get("conversation_id") != message.message_key
            ):
                raise MalformedEnvelope(
                    f"outbox row {message.id} has a bad payload: not an object of its conversation"
                )
        # What the compact encoder writes for these keys, in this order, without building a
        # dict and walking it.
        return (
            f'{{"event_id":{_quoted(message.event_id)},"type":{_quoted(message.biz_type)},'
            f'"schema_version":{SCHEMA_VERSION},"occurred_at":"{message.created_at.isoformat()}",'
            f'"key":{_quoted(message.message_key)},"outbox_id":{message.id:d},'
            f'"payload":{message.payload}}}'
        ).encode()

    def decode(
        self, data: bytes, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ) -> AnyEnvelope:
        return decode_any(data, max_message_bytes, parse=_parse_counting_keys)


def _parse_counting_keys(text: str) -> Any:
    """parse_json's result, from the plain parse whenever no key can have repeated: every key
    ends in `"` then `:` (so does an escaped `\\":` inside a string), so when that count
    equals the keys parsed in the envelope and its payload, none repeated there; keys deeper
    down, or any doubt, take the strict parse, which builds every object through a hook."""
    document = parse_json(text, refuse_repeated_keys=False)
    if not isinstance(document, dict):
        return document
    payload = document.get("payload")
    keys = len(document) + (len(payload) if isinstance(payload, dict) else 0)
    if len(_KEY_END.findall(text)) != keys:
        return parse_json(text)
    return document


def _stored_payload(message: OutboxMessage) -> Any:
    """json.loads(message.payload), refusing what it refuses. The raw decoder alone is enough
    for a payload we wrote (nothing around the value) and skips loads' whitespace checks."""
    text = message.payload
    try:
        payload, end = _ANY.raw_decode(text)
    except (ValueError, RecursionError):
        payload, end = None, -1
    if end == len(text):
        return payload
    try:
        return json.loads(text)  # whitespace around the value, or an error
    except (ValueError, RecursionError):
        raise MalformedEnvelope(f"outbox row {message.id} has a bad payload: not JSON") from None
