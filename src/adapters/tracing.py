"""W3C trace context through OpenTelemetry, when `opentelemetry-api` is installed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from chat_outbox.application.tracing import (
    TRACEPARENT_HEADER,
    LogContextOnly,
    Tracing,
    bound_traceparent,
)


class OpenTelemetryTracing(LogContextOnly):
    """Captures the active span's context and attaches a restored one, so spans started
    while a message is handled join the trace it was recorded in."""

    def current(self) -> str | None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        return carrier.get(TRACEPARENT_HEADER)

    def restored(self, traceparent: str | None) -> AbstractContextManager[None]:
        return _attached(traceparent)


@contextmanager
def _attached(traceparent: str | None) -> Iterator[None]:
    from opentelemetry import context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if traceparent is None:
        yield
        return
    restored = TraceContextTextMapPropagator().extract({TRACEPARENT_HEADER: traceparent})
    token = context.attach(restored)
    try:
        with bound_traceparent(traceparent):
            yield
    finally:
        context.detach(token)


def available_tracing() -> Tracing:
    """OpenTelemetry when installed (the `otel` extra), else log context only."""
    try:
        import opentelemetry.propagate  # noqa: F401
    except ImportError:
        return LogContextOnly()
    return OpenTelemetryTracing()
