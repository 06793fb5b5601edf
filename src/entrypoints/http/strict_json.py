"""Request bodies as strict JSON: UTF-8 only, no duplicate keys, no NaN, a JSON media type.

FastAPI's own parsing lets the last of two duplicate keys win, accepts UTF-16 and NaN, and
answers a bad byte or an over-long number with an unspecific 400. Each of these is a 422
here, with its reason, raised as JSONDecodeError so FastAPI reports it as a body error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Coroutine
from email.message import Message
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute


class StrictJsonRoute(APIRoute):
    """A route whose JSON body is parsed by `strict_loads`, and refused (415) unless its
    content type is JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def strict(request: Request) -> Response:
            _require_json_media_type(request.headers.get("content-type"))
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = strict_loads(await self.body())
        return self._json


def strict_loads(body: bytes) -> Any:
    """The JSON value of `body` (RFC 8259: UTF-8, unique keys); JSONDecodeError saying why."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        doc = body.decode("utf-8", "replace")
        bad = body[error.start]
        raise json.JSONDecodeError(
            f"invalid UTF-8 byte 0x{bad:02x} at byte {error.start}", doc, 0
        ) from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        reason = f"{error.msg} at line {error.lineno} column {error.colno}"
        raise json.JSONDecodeError(reason, text, error.pos) from None
    except _Refused as error:
        raise json.JSONDecodeError(str(error), text, 0) from None
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None
    except ValueError:  # an integer of more digits than int() converts
        limit = sys.get_int_max_str_digits()
        raise json.JSONDecodeError(f"a number has over {limit} digits", text, 0) from None


class _Refused(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _Refused(f"duplicate key {key!r:.60}")
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON value")


def _require_json_media_type(content_type: str | None) -> None:
    parsed = Message()
    parsed["content-type"] = content_type or ""
    subtype = parsed.get_content_subtype()
    is_application = content_type and parsed.get_content_maintype() == "application"
    if is_application and (subtype == "json" or subtype.endswith("+json")):
        return
    got = f"{content_type!r:.60}" if content_type else "none"
    raise HTTPException(415, f"content-type must be application/json, got {got}")
