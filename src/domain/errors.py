"""Errors the domain raises; each names exactly what was wrong."""


class DomainError(Exception):
    """Base of every error the domain raises."""


class InvalidChatMessage(DomainError):
    """A chat message broke a validation rule (role, ids, size, characters)."""


class InvalidEvent(DomainError):
    """An event broke a rule of its type (name, key, payload shape or size, its validator)."""


class UnknownEventType(DomainError):
    """An event of a type nobody registered: refused when recorded, never left to wait."""


class MalformedEnvelope(DomainError):
    """Bytes on the bus could not be decoded into a valid envelope."""


class IllegalTransition(DomainError):
    """An event that the state machine forbids in the message's current state."""
