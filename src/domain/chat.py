"""The chat message a user or agent produced, with the rules it must satisfy."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

import attrs

from chat_outbox.domain.errors import InvalidChatMessage

DEFAULT_MAX_MESSAGE_BYTES = 512 * 1024
MAX_CONVERSATION_ID_LENGTH = 128
PAYLOAD_FIELDS = ("user_id", "conversation_id", "role", "message")
_PAYLOAD_KEYS = frozenset(PAYLOAD_FIELDS)
# Unicode categories Cc and Cs, as one C-speed scan instead of a lookup per character.
CONTROL_OR_SURROGATE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# str.isprintable() refuses Unicode's "Other" and "Separator" categories but the ASCII
# space (Cc, Cf such as bidi overrides and zero-width joiners, Cs, Co, Cn, Zl, Zp, and Zs
# such as no-break spaces); these are the other Default_Ignorable_Code_Points, which
# render as nothing: a combining grapheme joiner, Hangul fillers, Khmer and Mongolian
# invisible vowels and selectors, and variation selectors.
INVISIBLE_MARK = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180d\u180f\u3164\ufe00-\ufe0f\uffa0"
    "\U000e0100-\U000e01ef]"
)


class Role(enum.StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


ROLES = {role.value: role for role in Role}


@attrs.frozen
class ChatMessage:
    user_id: int
    conversation_id: str
    role: Role
    message: str

    @classmethod
    def create(
        cls,
        *,
        user_id: object,
        conversation_id: object,
        role: object,
        message: object,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> ChatMessage:
        """Validate untrusted values; raise InvalidChatMessage naming the field at fault."""
        return cls(
            user_id=_user_id(user_id),
            conversation_id=checked_conversation_id(conversation_id),
            role=_role(role),
            message=_message(message, max_message_bytes),
        )

    @classmethod
    def from_payload(
        cls, payload: object, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ) -> ChatMessage:
        if not isinstance(payload, Mapping):
            raise InvalidChatMessage(f"payload must be an object, got {_type_name(payload)}")
        if payload.keys() != _PAYLOAD_KEYS:  # the common case, without building a set
            _exact_fields("payload", payload, PAYLOAD_FIELDS)
        # The validators called directly, not through create(**...): this runs per record.
        return cls(
            _user_id(payload["user_id"]),
            checked_conversation_id(payload["conversation_id"]),
            _role(payload["role"]),
            _message(payload["message"], max_message_bytes),
        )

    def to_payload(self) -> dict[str, object]:
        return {
            "user_id": self.user_id,
            "conversation_id": self.conversation_id,
            "role": self.role.value,
            "message": self.message,
        }


def _user_id(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidChatMessage(f"user_id must be an integer, got {_type_name(value)}")
    if value <= 0:
        raise InvalidChatMessage(f"user_id must be positive, got {value}")
    if value >= 2**63:
        raise InvalidChatMessage("user_id must fit in 64 bits")
    return value


def checked_conversation_id(value: object) -> str:
    """The value when it is a valid conversation id; else InvalidChatMessage saying why."""
    if not isinstance(value, str):
        raise InvalidChatMessage(f"conversation_id must be a string, got {_type_name(value)}")
    if not 1 <= len(value) <= MAX_CONVERSATION_ID_LENGTH:
        raise InvalidChatMessage(
            f"conversation_id must be 1-{MAX_CONVERSATION_ID_LENGTH} characters, got {len(value)}"
        )
    if value.isprintable() and not INVISIBLE_MARK.search(value):  # C speed, per record
        return value
    found = CONTROL_OR_SURROGATE.search(value)
    if found:
        raise InvalidChatMessage(
            "conversation_id has a control or surrogate character "
            f"{found.group()!r} at index {found.start()}"
        )
    index = next(i for i, c in enumerate(value) if not c.isprintable() or INVISIBLE_MARK.match(c))
    raise InvalidChatMessage(
        f"conversation_id has an invisible or format character U+{ord(value[index]):04X} "
        f"at index {index}"
    )


def _role(value: object) -> Role:
    role = ROLES.get(value) if isinstance(value, str) else None
    if role is not None:
        return role
    allowed = ", ".join(r.value for r in Role)
    raise InvalidChatMessage(f"role must be one of {allowed}, got {value!r:.40}")


def _message(value: object, max_bytes: int) -> str:
    if not isinstance(value, str):
        raise InvalidChatMessage(f"message must be a string, got {_type_name(value)}")
    if "\x00" in value:
        raise InvalidChatMessage(f"message contains a NUL character at index {value.index(chr(0))}")
    _no_control_characters(value)
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as error:
        raise InvalidChatMessage(
            f"message is not valid Unicode: lone surrogate at index {error.start}"
        ) from None
    if size > max_bytes:
        raise InvalidChatMessage(f"message is {size} bytes, over the limit of {max_bytes} bytes")
    return value


# Text layout is fine in a chat message; other control characters (escape sequences, bells,
# C1 codes) only ever arrive to hijack a terminal or log viewer that shows the history.
# (Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F.)
_FORBIDDEN_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _no_control_characters(value: str) -> None:
    found = _FORBIDDEN_CONTROL.search(value)
    if found is not None:
        raise InvalidChatMessage(
            f"message contains control character U+{ord(found[0]):04X} at index {found.start()} "
            "(only tab, newline and carriage return are allowed)"
        )


def _exact_fields(what: str, data: Mapping[object, object], fields: tuple[str, ...]) -> None:
    if data.keys() == frozenset(fields):
        return
    missing = [name for name in fields if name not in data]
    if missing:
        raise InvalidChatMessage(f"{what} is missing field {missing[0]!r}")
    extra = sorted(str(name) for name in data if name not in fields)
    if extra:
        raise InvalidChatMessage(f"{what} has unexpected field {extra[0]!r:.60}")


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__
