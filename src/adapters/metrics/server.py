"""A Prometheus scrape endpoint for the relay and the consumer (the API serves /metrics)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = structlog.get_logger(__name__)


class ListenFailed(RuntimeError):
    """A server could not bind its address (in use, or not this host's): one line."""

    @classmethod
    def on(cls, host: str, port: int, error: OSError) -> ListenFailed:
        return cls(f"cannot listen on {host}:{port}: {error.strerror or error}")


def metrics_server(
    registry: Callable[[], CollectorRegistry], host: str, port: int
) -> Iterator[int | None]:
    """A Resource: serve the registry `registry()` gives on host:port in a daemon thread
    until shutdown. Port 0 turns it off, without making the registry. Yields the bound port."""
    if port == 0:
        yield None
        return
    # Imported here: with the port off, a relay or consumer never loads prometheus-client.
    from prometheus_client import start_http_server

    try:
        server, thread = start_http_server(port, host, registry=registry())
    except OSError as error:
        raise ListenFailed.on(host, port, error) from None
    log.info("metrics_serving", host=host, port=server.server_port)
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
