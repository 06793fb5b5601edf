"""`chat-outbox serve`: the HTTP API (FastAPI on uvicorn) over the same use cases as the CLI."""

from chat_outbox.entrypoints.http.app import create_app
from chat_outbox.entrypoints.http.server import ApiServer

__all__ = ["ApiServer", "create_app"]
