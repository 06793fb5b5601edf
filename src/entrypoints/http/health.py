"""Liveness, readiness (database and bus), and the Prometheus scrape."""

from __future__ import annotations

import structlog
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from chat_outbox.application.errors import StoreUnavailable
from chat_outbox.application.metrics import refresh_outbox_gauges
from chat_outbox.application.operate.health import OK, readiness
from chat_outbox.entrypoints.http.deps import Metrics, Now, Probes, Uow

log = structlog.get_logger(__name__)
router = APIRouter(tags=["health"])
PROBE_TIMEOUT_S = 3.0
UNAVAILABLE = "unavailable"


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving; nothing else is checked."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "the database or the bus is down"}})
async def readyz(probes: Probes) -> JSONResponse:
    """200 when the database and the bus answer; 503 naming the one that does not, as
    `unavailable` (the reason is logged at warning, not told to whoever asks)."""
    verdicts = await readiness(probes, PROBE_TIMEOUT_S)
    for name, verdict in verdicts.items():
        if verdict != OK:
            # The driver's text names hosts and ports: for the operator's log, not the public.
            log.warning("readiness_check_failed", check=name, reason=verdict)
    checks = {name: OK if verdict == OK else UNAVAILABLE for name, verdict in verdicts.items()}
    ready = all(verdict == OK for verdict in checks.values())
    body = {"status": "ready" if ready else UNAVAILABLE, "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response)
async def metrics(exported: Metrics, uow: Uow, clock: Now) -> Response:
    """Prometheus text format; the outbox gauges are refreshed from the stats query first."""
    try:
        await refresh_outbox_gauges(uow, clock, exported)
    except StoreUnavailable as error:
        log.warning("metrics_refresh_failed", error=str(error))  # serve the last values
    return Response(exported.exposition(), media_type=CONTENT_TYPE_LATEST)
