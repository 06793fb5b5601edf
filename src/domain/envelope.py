"""The envelope a chat message travels in on the bus, and its strict codec."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs

from chat_outbox.domain.chat import DEFAULT_MAX_MESSAGE_BYTES, ChatMessage
from chat_outbox.domain.errors import InvalidChatMessage, InvalidEvent, MalformedEnvelope
from chat_outbox.domain.events import Event, checked_key, checked_type_name
from chat_outbox.domain.outbox import BIZ_TYPE_CHAT_HISTORY, OutboxMessage

SCHEMA_VERSION = 1
CANONICAL_UUID = re.compile("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ENVELOPE_FIELDS = (
    "event_id",
    "type",
    "schema_version",
    "occurred_at",
    "key",
    "outbox_id",
    "payload",
)
ENVELOPE_KEYS = frozenset(ENVELOPE_FIELDS)
JsonParser = Callable[[str], Any] | None


@attrs.frozen
class Provenance:
    """What a record and its outbox row must agree on before the record has any effect.
    The field names are the outbox columns', so the SQL checks derive from this class."""

    id: int
    event_id: str
    message_key: str
    biz_type: str

    @classmethod
    def of_row(cls, row: OutboxMessage) -> Provenance:
        return cls(row.id, row.event_id, row.message_key, row.biz_type)

    def mismatch(self, row: Provenance | None) -> str | None:
        """None when `row` (the stored row of this id, None if there is none) vouches for
        the record claiming this provenance; else why not, naming fields, never values."""
        if row is None:
            return f"forged_or_stale: no outbox row {self.id}"
        if row == self:
            return None
        fields = [
            f.name
            for f in attrs.fields(Provenance)
            if getattr(row, f.name) != getattr(self, f.name)
        ]
        return f"forged_or_stale: outbox row {self.id} has another {' and '.join(fields)}"


PROVENANCE_COLUMNS = tuple(field.name for field in attrs.fields(Provenance))


@attrs.frozen
class Envelope:
    event_id: str
    type: str
    schema_version: int
    occurred_at: datetime
    key: str
    outbox_id: int
    payload: ChatMessage

    @property
    def provenance(self) -> Provenance:
        """What this record claims about its outbox row."""
        return Provenance(self.outbox_id, self.event_id, self.key, self.type)

    @classmethod
    def for_outbox_message(cls, message: OutboxMessage) -> Envelope:
        """Build from a stored row; a row whose payload no longer parses is malformed."""
        try:
            chat = ChatMessage.from_payload(json.loads(message.payload), max_message_bytes=2**62)
        except (ValueError, InvalidChatMessage) as error:
            raise MalformedEnvelope(f"outbox row {message.id} has a bad payload: {error}") from None
        return cls(**_row_fields(message), payload=chat)

    def encode(self) -> bytes:
        return _encoded(self, self.payload.to_payload())

    @classmethod
    def decode(
        cls,
        data: bytes,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        parse: JsonParser = None,
    ) -> Envelope:
        """Parse untrusted bytes; raise MalformedEnvelope with the precise reason, and
        nothing else whatever the bytes (a consumer that crashed on a record would stop its
        partition behind it for good). `parse` turns the text into a value, refusing repeated
        keys as parse_json does; an adapter may pass a faster one with the same results."""
        try:
            return cls._decode(data, max_message_bytes, parse or parse_json)
        except MalformedEnvelope:
            raise
        except RecursionError:  # a repr or a check walking a deeply nested value
            raise MalformedEnvelope("envelope is nested too deeply") from None
        except Exception as error:  # noqa: BLE001 - any other failure is a malformed record too
            raise MalformedEnvelope(f"cannot decode: {type(error).__name__}") from None

    @classmethod
    def _decode(cls, data: bytes, max_message_bytes: int, parse: Callable[[str], Any]) -> Envelope:
        document = _document(data, parse)
        if document["type"] != BIZ_TYPE_CHAT_HISTORY:
            raise MalformedEnvelope(f"unknown message type {document['type']!r:.60}")
        return cls._of_chat(document, max_message_bytes)

    @classmethod
    def _of_chat(cls, document: dict[str, Any], max_message_bytes: int) -> Envelope:
        try:
            payload = ChatMessage.from_payload(document["payload"], max_message_bytes)
        except InvalidChatMessage as error:
            raise MalformedEnvelope(f"invalid payload: {error}") from None
        key = _string(document, "key")
        if key != payload.conversation_id:
            raise MalformedEnvelope("key does not match the payload's conversation_id")
        return cls(
            event_id=_event_id(document),
            type=BIZ_TYPE_CHAT_HISTORY,
            schema_version=SCHEMA_VERSION,
            occurred_at=_timestamp(document),
            key=key,
            outbox_id=_positive_int(document, "outbox_id"),
            payload=payload,
        )


@attrs.frozen
class EventEnvelope:
    """The envelope of an event of another type than chat: the same fields, its payload the
    JSON value its type's validator checks (the consumer does, once it knows the type)."""

    event_id: str
    type: str
    schema_version: int
    occurred_at: datetime
    key: str
    outbox_id: int
    payload: Any

    @property
    def provenance(self) -> Provenance:
        return Provenance(self.outbox_id, self.event_id, self.key, self.type)

    @property
    def event(self) -> Event:
        return Event(self.type, self.key, self.payload, self.event_id, self.outbox_id)

    @classmethod
    def for_outbox_message(cls, message: OutboxMessage) -> EventEnvelope:
        try:
            payload = json.loads(message.payload)
        except (ValueError, RecursionError):
            raise MalformedEnvelope(
                f"outbox row {message.id} has a bad payload: not JSON"
            ) from None
        return cls(**_row_fields(message), payload=payload)

    def encode(self) -> bytes:
        return _encoded(self, self.payload)

    @classmethod
    def _of(cls, document: dict[str, Any]) -> EventEnvelope:
        try:
            kind = checked_type_name(document["type"])
            key = checked_key(document["key"])
        except InvalidEvent as error:
            raise MalformedEnvelope(str(error)) from None
        return cls(
            event_id=_event_id(document),
            type=kind,
            schema_version=SCHEMA_VERSION,
            occurred_at=_timestamp(document),
            key=key,
            outbox_id=_positive_int(document, "outbox_id"),
            payload=document["payload"],
        )


AnyEnvelope = Envelope | EventEnvelope


def _row_fields(message: OutboxMessage) -> dict[str, Any]:
    """Every envelope field a stored row gives but the payload."""
    return {
        "event_id": message.event_id,
        "type": message.biz_type,
        "schema_version": SCHEMA_VERSION,
        "occurred_at": message.created_at,
        "key": message.message_key,
        "outbox_id": message.id,
    }


def _encoded(envelope: AnyEnvelope, payload: Any) -> bytes:
    """The envelope as compact JSON, its payload given as a JSON value."""
    document = {
        "event_id": envelope.event_id,
        "type": envelope.type,
        "schema_version": envelope.schema_version,
        "occurred_at": envelope.occurred_at.isoformat(),
        "key": envelope.key,
        "outbox_id": envelope.outbox_id,
        "payload": payload,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_any(
    data: bytes, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, parse: JsonParser = None
) -> AnyEnvelope:
    """Envelope.decode for a record of any type: a chat message's envelope, or another
    type's with its payload unchecked. MalformedEnvelope, and nothing else, whatever the bytes."""
    try:
        document = _document(data, parse or parse_json)
        if document["type"] == BIZ_TYPE_CHAT_HISTORY:
            return Envelope._of_chat(document, max_message_bytes)
        return EventEnvelope._of(document)
    except MalformedEnvelope:
        raise
    except RecursionError:
        raise MalformedEnvelope("envelope is nested too deeply") from None
    except Exception as error:  # noqa: BLE001 - any other failure is a malformed record too
        raise MalformedEnvelope(f"cannot decode: {type(error).__name__}") from None


def _document(data: bytes, parse: Callable[[str], Any]) -> dict[str, Any]:
    """The envelope's JSON object, with exactly its fields and a schema version we read."""
    document = _parse_json_object(data, parse)
    if len(document) != len(ENVELOPE_FIELDS) or not ENVELOPE_KEYS.issuperset(document):
        missing = [name for name in ENVELOPE_FIELDS if name not in document]
        if missing:
            raise MalformedEnvelope(f"envelope is missing field {missing[0]!r}")
        extra = sorted(name for name in document if name not in ENVELOPE_FIELDS)
        raise MalformedEnvelope(f"envelope has unexpected field {extra[0]!r:.60}")
    version = document["schema_version"]
    if type(version) is not int or version != SCHEMA_VERSION:
        raise MalformedEnvelope(
            f"unsupported schema version {version!r:.20} (this reader knows {SCHEMA_VERSION})"
        )
    return document


def _parse_json_object(data: bytes, parse: Callable[[str], Any]) -> dict[str, Any]:
    if not data:
        raise MalformedEnvelope("empty record")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedEnvelope(f"not valid UTF-8 at byte {error.start}") from None
    document = parse(text)
    if not isinstance(document, dict):
        raise MalformedEnvelope(f"envelope must be a JSON object, got {type(document).__name__}")
    return document


def parse_json(text: str, refuse_repeated_keys: bool = True) -> Any:
    """JSON text to a value, refusing NaN and Infinity and, unless told otherwise, a key
    repeated in one object (which a plain parse would hide: the last one wins)."""
    try:
        return (_STRICT if refuse_repeated_keys else _PLAIN).decode(text)
    except json.JSONDecodeError as error:
        raise MalformedEnvelope(
            f"not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise MalformedEnvelope("not JSON: nested too deeply") from None
    except ValueError as error:  # int() refusing a number over sys.get_int_max_str_digits()
        problem = "a number has too many digits" if "digits" in str(error) else "bad value"
        raise MalformedEnvelope(f"not JSON: {problem}") from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)  # C speed; a shorter dict means a key came twice
    if len(document) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise MalformedEnvelope(f"duplicate field {name!r:.60}")
            seen.add(name)
    return document


def _no_constants(name: str) -> None:
    raise MalformedEnvelope(f"not JSON: {name} is not allowed")


# Built once: json.loads with options builds a new decoder on every call.
_PLAIN = json.JSONDecoder(parse_constant=_no_constants)
_STRICT = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)


def _string(document: dict[str, Any], name: str) -> str:
    value = document[name]
    if not isinstance(value, str):
        raise MalformedEnvelope(f"{name} must be a string")
    return value


def _positive_int(document: dict[str, Any], name: str) -> int:
    value = document[name]
    if type(value) is not int or not 0 < value < 2**63:
        raise MalformedEnvelope(f"{name} must be a positive integer below 2**63")
    return value


def _event_id(document: dict[str, Any]) -> str:
    value = _string(document, "event_id")
    if CANONICAL_UUID.fullmatch(value):
        return value  # already what str(UUID(value)) would give
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise MalformedEnvelope(f"event_id is not a UUID: {value!r:.60}") from None


def _timestamp(document: dict[str, Any]) -> datetime:
    value = _string(document, "occurred_at")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedEnvelope(f"occurred_at is not ISO 8601: {value!r:.60}") from None
    if moment.tzinfo is None:
        raise MalformedEnvelope("occurred_at has no timezone")
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        raise MalformedEnvelope(f"occurred_at is out of range: {value!r:.60}") from None
    if not 1970 <= utc.year <= 9999:
        raise MalformedEnvelope(f"occurred_at is out of range: {value!r:.60}")
    return utc


@attrs.frozen
class PlainEnvelopeCodec:
    """The envelope rules as they read: encode a row's envelope, decode refusing repeated
    keys. adapters.codec gives the same results faster; this one is the reference.
    `types` are the event types besides chat this process knows: a row of any other type
    cannot be encoded (the relay sends it dead at once instead of leaving it to wait)."""

    types: frozenset[str] = frozenset()

    def encode(self, message: OutboxMessage) -> bytes:
        if message.biz_type == BIZ_TYPE_CHAT_HISTORY:
            return Envelope.for_outbox_message(message).encode()
        refuse_unknown_type(message, self.types)
        return EventEnvelope.for_outbox_message(message).encode()

    def decode(
        self, data: bytes, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ) -> AnyEnvelope:
        return decode_any(data, max_message_bytes)


def refuse_unknown_type(message: OutboxMessage, types: frozenset[str]) -> None:
    """MalformedEnvelope, saying so, when the row's type is not chat nor one of `types`."""
    if message.biz_type not in types:
        raise MalformedEnvelope(
            f"unknown event type {message.biz_type!r:.70}: no type of that name is registered "
            "in this relay"
        )
