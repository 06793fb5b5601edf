"""Relays on the SQL store for the integration tests: the claim strategies the container
picks, built by hand."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.claims import LeasedClaims, LockedClaims
from chat_outbox.application.ports import Clock, MessageBus
from chat_outbox.application.relay.relaying import Relay
from chat_outbox.application.relay.sharing import RelayShares

LEASE = timedelta(seconds=60)


def leasing_relay(
    uow: SqlUnitOfWorkFactory,
    bus: MessageBus,
    clock: Clock,
    *args: Any,
    lease: timedelta = LEASE,
    **kwargs: Any,
) -> Relay:
    """A relay claiming leased heads; other arguments as Relay's after the bus and clock."""
    return Relay(LeasedClaims(uow, clock, lease), bus, clock, *args, **kwargs)


def locking_relay(
    uow: SqlUnitOfWorkFactory,
    bus: MessageBus,
    clock: Clock,
    *args: Any,
    shares: RelayShares | None = None,
    **kwargs: Any,
) -> Relay:
    """A relay claiming locked runs (PostgreSQL, MariaDB), sharing them out with `shares`."""
    return Relay(LockedClaims(uow, shares), bus, clock, *args, **kwargs)
