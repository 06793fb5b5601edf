"""The hostile records produced straight into the chat topic, each with the reason the
consumer must give for dead-lettering it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs

CONVERSATION = "hostile-target"
TEN_MB = 10 * 1024 * 1024


@attrs.frozen
class Hostile:
    case: str
    value: bytes | None
    reason: str
    key: bytes | None = CONVERSATION.encode()


def document(**changes: Any) -> dict[str, Any]:
    """A valid envelope (fresh event id) with top-level or payload fields changed;
    a value of ... removes the field."""
    payload: dict[str, Any] = {
        "user_id": 7,
        "conversation_id": CONVERSATION,
        "role": "user",
        "message": "hi",
    }
    envelope: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": "chat_history_persist",
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "key": CONVERSATION,
        "outbox_id": 1,
        "payload": payload,
    }
    for name, value in changes.items():
        target = payload if name in payload else envelope
        if value is ...:
            del target[name]
        else:
            target[name] = value
    if "conversation_id" in changes and changes["conversation_id"] is not ...:
        envelope["key"] = changes["conversation_id"]
    return envelope


def encoded(**changes: Any) -> bytes:
    return json.dumps(document(**changes)).encode()


def with_key_of(value: bytes) -> Callable[[str, str], Hostile]:
    def case(name: str, reason: str) -> Hostile:
        key = json.loads(value)["key"].encode("utf-8", "surrogatepass")
        return Hostile(name, value, reason, key)

    return case


LONG_ID = "c" * 100_000
HOSTILE: list[Hostile] = [
    Hostile("malformed json", b'{"event_id": "x", ', "not JSON: Expecting"),
    Hostile("json array", b"[1, 2, 3]", "envelope must be a JSON object, got list"),
    Hostile("json NaN", encoded(user_id=float("nan")), "not JSON: NaN is not allowed"),
    Hostile("user_id as string", encoded(user_id="7"), "user_id must be an integer, got str"),
    Hostile("outbox_id as float", encoded(outbox_id=1.5), "outbox_id must be a positive integer"),
    Hostile("missing field", encoded(outbox_id=...), "envelope is missing field 'outbox_id'"),
    Hostile("missing payload field", encoded(role=...), "payload is missing field 'role'"),
    Hostile("extra field", encoded(admin=True), "envelope has unexpected field 'admin'"),
    Hostile(
        "extra payload field",
        encoded(message="a").replace(b'"message": "a"', b'"message": "a", "tokens": 3'),
        "payload has unexpected field 'tokens'",
    ),
    Hostile("null message", encoded(message=None), "message must be a string, got null"),
    Hostile("null event id", encoded(event_id=None), "event_id must be a string"),
    Hostile(
        "unknown biz type",
        encoded(type="order_created"),
        "unknown_type: no handler for event type 'order_created'",
    ),
    Hostile("biz type that is no type name", encoded(type="Order Created!"), "event type must"),
    Hostile("future schema version", encoded(schema_version=2), "unsupported schema version 2"),
    Hostile(
        "over the size limit",
        encoded(message="x" * 600_000),
        "message is 600000 bytes, over the limit of 524288 bytes",
    ),
    Hostile("10 MB body", encoded(message="y" * TEN_MB), f"message is {TEN_MB} bytes, over"),
    Hostile("invalid utf-8", b'{"event_id": "\xff\xfe"}', "not valid UTF-8 at byte 14"),
    Hostile(
        "lone surrogate",
        encoded(message="a").replace(b'"message": "a"', b'"message": "\\ud800"'),
        "lone surrogate at index 0",
    ),
    Hostile(
        "escaped NUL", encoded(message="a\x00b"), "message contains a NUL character at index 1"
    ),
    Hostile(
        "raw NUL byte",
        encoded(message="a").replace(b'"message": "a"', b'"message": "a\x00"'),
        "not JSON: Invalid control character",
    ),
    Hostile(
        "control character in message",
        encoded(message="\x1b[2J"),
        "message contains control character U+001B at index 0",
    ),
    with_key_of(encoded(conversation_id="bell\x07"))(
        "control character in conversation id", "control or surrogate character '\\x07'"
    ),
    with_key_of(encoded(conversation_id=LONG_ID))(
        "very long conversation id", "conversation_id must be 1-128 characters, got 100000"
    ),
    Hostile("zero user id", encoded(user_id=0), "user_id must be positive, got 0"),
    Hostile("negative user id", encoded(user_id=-3), "user_id must be positive, got -3"),
    Hostile("unknown role", encoded(role="root"), "role must be one of user, assistant"),
    Hostile("empty record", b"", "empty record"),
    Hostile("tombstone (no value)", None, "empty record"),
    Hostile("no key", encoded(), "record has no key", key=None),
    Hostile("key of another conversation", encoded(), "record key does not match", key=b"other"),
]
