"""Event types besides chat messages: what a type declares, and the rules every event of
any type passes before it is recorded or handled."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import attrs

from chat_outbox.domain.errors import InvalidEvent

# Dotted lower-case words, as in "agent_run.finished"; the outbox's biz_type column holds 64.
EVENT_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")
MAX_EVENT_TYPE_LENGTH = 64
MAX_EVENT_KEY_LENGTH = 128  # the outbox's message_key column
DEFAULT_MAX_EVENT_BYTES = 64 * 1024
MAX_PAYLOAD_DEPTH = 32
"""Objects and arrays nested deeper are refused: a handler walking them must not recurse out."""

Validator = Callable[[Any], None]
"""Checks a payload already known to be JSON-compatible; raises ValueError (or
InvalidEvent) whose text says what is wrong."""


def any_json(payload: Any) -> None:
    """The default validator: every JSON-compatible payload is accepted."""


def checked_type_name(value: object) -> str:
    if not isinstance(value, str) or not EVENT_TYPE_NAME.fullmatch(value):
        raise InvalidEvent(
            f"event type must be dotted lower-case words like 'agent_run.finished', "
            f"got {value!r:.70}"
        )
    if len(value) > MAX_EVENT_TYPE_LENGTH:
        raise InvalidEvent(f"event type must be at most {MAX_EVENT_TYPE_LENGTH} characters")
    return value


def checked_key(value: object) -> str:
    """An ordering key: events of one key are published and handled in recording order."""
    if not isinstance(value, str):
        raise InvalidEvent(f"event key must be a string, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_EVENT_KEY_LENGTH:
        raise InvalidEvent(f"event key must be 1-{MAX_EVENT_KEY_LENGTH} characters")
    if not value.isprintable():
        raise InvalidEvent("event key has a control, format or invisible character")
    return value


def _valid_name(_: object, __: attrs.Attribute[str], value: str) -> None:
    checked_type_name(value)


@attrs.frozen
class EventType:
    """A kind of event the application records and a consumer handles. The payload is any
    JSON-compatible value that `validate` accepts; it is checked when recorded and again
    when handled, since a record on the bus may come from anywhere."""

    name: str = attrs.field(validator=_valid_name)
    validate: Validator = any_json
    topic: str | None = None
    """The topic its events are published to; None: the configured topic."""
    max_payload_bytes: int = attrs.field(
        default=DEFAULT_MAX_EVENT_BYTES, validator=attrs.validators.ge(2)
    )

    def payload_text(self, payload: Any) -> str:
        """The payload as stored and sent: compact JSON. InvalidEvent when it is not
        JSON-compatible, too deep, over the size limit, or refused by `validate`."""
        _json_compatible(payload, MAX_PAYLOAD_DEPTH)
        try:
            text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        except ValueError:  # an integer over sys.get_int_max_str_digits()
            raise InvalidEvent("event payload has a number with too many digits") from None
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > self.max_payload_bytes:
            raise InvalidEvent(
                f"{self.name} payload is {size} bytes, over its limit of "
                f"{self.max_payload_bytes} bytes"
            )
        self.check(payload)
        return text

    def check(self, payload: Any) -> None:
        """Run the type's own validator; InvalidEvent with its reason when it refuses."""
        try:
            self.validate(payload)
        except InvalidEvent:
            raise
        except (ValueError, TypeError, KeyError) as error:
            raise InvalidEvent(f"invalid {self.name} payload: {error}"[:500]) from None


@attrs.frozen
class Event:
    """An event of a registered type: recorded under its key, which orders it among the
    key's other events (of any type), and handed to its handler with where it came from."""

    type: str
    key: str
    payload: Any
    event_id: str = ""
    """Set once recorded: the id that makes its handling happen exactly once."""
    outbox_id: int = 0


def _json_compatible(value: Any, depth: int) -> None:
    """InvalidEvent unless `value` is made of dicts with string keys, lists, strings
    (valid Unicode), finite numbers, booleans and None, its containers at most `depth`
    levels deep."""
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidEvent("event payload has a NaN or infinite number")
        return
    if isinstance(value, str):
        _valid_unicode(value)
        return
    if not isinstance(value, list | tuple | dict):
        raise InvalidEvent(f"event payload has a {type(value).__name__}, which JSON cannot hold")
    if depth < 1:
        raise InvalidEvent(f"event payload is nested deeper than {MAX_PAYLOAD_DEPTH} levels")
    if isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                raise InvalidEvent(f"event payload has a non-string key {name!r:.40}")
            _valid_unicode(name)
            _json_compatible(item, depth - 1)
        return
    for item in value:
        _json_compatible(item, depth - 1)


def _valid_unicode(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidEvent(f"event payload has a lone surrogate at index {error.start}") from None
