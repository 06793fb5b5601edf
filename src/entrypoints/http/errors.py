"""Every error as JSON: {"error": reason}, and for 422 the fields at fault."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from chat_outbox.application.errors import IdempotencyConflict, StoreUnavailable
from chat_outbox.domain import InvalidChatMessage
from chat_outbox.domain.chat import PAYLOAD_FIELDS

log = structlog.get_logger(__name__)
MAX_ECHO_CHARS = 64
"""The most of a client's own text (a path, a field name) an error answer quotes."""
MAX_REASON_CHARS = 300


class InvalidField(Exception):
    """A value the domain refused, with where it came from (body, path or query)."""

    def __init__(self, location: str, error: InvalidChatMessage) -> None:
        super().__init__(str(error))
        self.location = location
        self.error = error


def install(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidField, _invalid_field)  # type: ignore[arg-type]
    app.add_exception_handler(StoreUnavailable, _store_unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(IdempotencyConflict, _idempotency_conflict)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _crash)


def invalid(fields: list[dict[str, str]]) -> JSONResponse:
    return JSONResponse({"error": "invalid request", "fields": fields}, status_code=422)


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    reason = error.detail
    if error.status_code == 404 and reason == "Not Found":
        reason = f"no route {_clipped(request.url.path, MAX_ECHO_CHARS)}"
    return JSONResponse({"error": reason}, error.status_code, headers=error.headers)


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    return invalid([_field(detail) for detail in error.errors()])


def _field(detail: dict[str, Any]) -> dict[str, str]:
    location, *path = detail.get("loc", ("body",))
    if detail.get("type") == "json_invalid":  # loc holds a character offset, not a field
        reason = detail.get("ctx", {}).get("error", "invalid")
        message = _clipped(f"body is not valid JSON: {reason}", MAX_REASON_CHARS)
        return {"field": "body", "in": "body", "message": message}
    # A field's name can be any key the client sent (an unexpected field): quote only a bit.
    field = ".".join(str(part) for part in path) or str(location)
    return {
        "field": _clipped(field, MAX_ECHO_CHARS),
        "in": _clipped(str(location), MAX_ECHO_CHARS),
        "message": _clipped(str(detail.get("msg", "invalid")), MAX_REASON_CHARS),
    }


def _clipped(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


async def _invalid_field(request: Request, error: InvalidField) -> JSONResponse:
    # The domain's messages start with the field they are about ("user_id must be ...").
    name = str(error.error).split(" ", 1)[0]
    field = name if name in PAYLOAD_FIELDS else error.location
    message = _clipped(str(error.error), MAX_REASON_CHARS)
    return invalid([{"field": field, "in": error.location, "message": message}])


async def _store_unavailable(request: Request, error: StoreUnavailable) -> JSONResponse:
    log.warning("http_store_unavailable", path=request.url.path, error=str(error))
    return JSONResponse({"error": "database unavailable, try again"}, 503)


async def _idempotency_conflict(request: Request, error: IdempotencyConflict) -> JSONResponse:
    reason = "Idempotency-Key was already used for a different message in this conversation"
    return JSONResponse({"error": reason}, 409)


async def _crash(request: Request, error: Exception) -> JSONResponse:
    # Starlette re-raises after this response, and uvicorn logs it with its traceback.
    return JSONResponse({"error": "internal error"}, 500)
