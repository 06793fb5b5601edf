"""The host's event types and their handlers, in one registry the library's jobs and the
`relay` and `consume` commands (`--handlers package.module:name`) load alike."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import MappingProxyType

from chat_outbox.adapters.sql.handling import Handler
from chat_outbox.domain import BIZ_TYPE_CHAT_HISTORY, EventType, UnknownEventType
from chat_outbox.entrypoints.config_parsers import ConfigError


class EventRegistry:
    """Event types besides chat messages, each with at most one handler. Register a type
    before recording or handling it; chat messages need no registration."""

    def __init__(self) -> None:
        self._types: dict[str, EventType] = {}
        self._handlers: dict[str, Handler] = {}

    @property
    def types(self) -> Mapping[str, EventType]:
        return MappingProxyType(self._types)

    @property
    def handlers(self) -> Mapping[str, Handler]:
        return MappingProxyType(self._handlers)

    def topics(self) -> tuple[str, ...]:
        """The topics of the types that have one of their own, which consumers read too."""
        return tuple(dict.fromkeys(t.topic for t in self._types.values() if t.topic))

    def register(self, event_type: EventType) -> EventType:
        """Add a type; ValueError if its name is chat's or taken by another type."""
        if event_type.name == BIZ_TYPE_CHAT_HISTORY:
            raise ValueError(f"{BIZ_TYPE_CHAT_HISTORY} is built in")
        known = self._types.get(event_type.name)
        if known is not None and known != event_type:
            raise ValueError(f"event type {event_type.name!r} is registered already")
        self._types[event_type.name] = event_type
        return event_type

    def handler(self, name: str) -> Callable[[Handler], Handler]:
        """Decorate the handler of a registered type: `async def h(event, session)`. It runs
        in the consumer's transaction; what it writes through `session` commits with the
        event's consumed mark, exactly once per event id."""
        self.type_of(name)

        def add(handler: Handler) -> Handler:
            if name in self._handlers and self._handlers[name] is not handler:
                raise ValueError(f"event type {name!r} has a handler already")
            self._handlers[name] = handler
            return handler

        return add

    def type_of(self, name: str) -> EventType:
        """The registered type; UnknownEventType naming the known ones if there is none."""
        try:
            return self._types[name]
        except KeyError:
            known = ", ".join(sorted(self._types)) or "none"
            raise UnknownEventType(
                f"event type {name!r:.70} is not registered (registered: {known})"
            ) from None


def load_registry(path: str) -> EventRegistry:
    """The EventRegistry at `package.module:name`; ConfigError saying what is wrong."""
    if not path:
        return EventRegistry()
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any failure of the host's module is one line
        detail = " ".join(str(error).split())  # one line, whatever the module's error says
        raise ConfigError(
            f"cannot import {module_name!r} for the event registry: "
            f"{type(error).__name__}: {detail}"[:300]
        ) from None
    registry = getattr(module, attribute, None)
    if not isinstance(registry, EventRegistry):
        found = "nothing" if registry is None else f"a {type(registry).__name__}"
        raise ConfigError(f"{path} must be a chat_outbox.EventRegistry, found {found}")
    return registry
