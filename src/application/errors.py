"""Errors adapters raise in the application's words."""


class StoreUnavailable(Exception):
    """The database could not be reached or dropped the connection; retrying may help."""


class BusUnavailable(Exception):
    """The message bus could not be reached; retrying may help."""


class DuplicateEvent(Exception):
    """An outbox row with this event id exists already (the unique constraint said so)."""


class IdempotencyConflict(Exception):
    """An idempotency key came back with a different message than it was first used for."""


class NotOwner(Exception):
    """The conversation belongs to another user than the one writing into it."""


class PermanentHandlerError(Exception):
    """Raised by an event handler when retrying cannot help: the event goes to the dead
    letters at once, with this error's text as the reason, and its row goes dead."""
