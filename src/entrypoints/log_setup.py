"""structlog set up once per process: JSON off a tty, console on one; stdlib logs alike."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from chat_outbox.entrypoints.audit import AUDIT_LOGGER

SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]
THIRD_PARTY = ("aiokafka", "aio_pika", "aiormq", "sqlalchemy", "alembic", "asyncio")
UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")


def configure_logging(
    log_format: str = "auto", level: str = "info", stream: TextIO | None = None
) -> None:
    """Render structlog events and stdlib records (aiokafka, SQLAlchemy, Alembic, uvicorn)
    through the same processors and one stderr handler."""
    stream = stream or sys.stderr
    as_json = log_format == "json" or (log_format == "auto" and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(
            colors=stream.isatty(),
            exception_formatter=structlog.dev.plain_traceback,
        )
    )
    # No locals in tracebacks: they would carry settings, URLs and passwords into the logs.
    final: list[Any] = (
        [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        ]
        if as_json
        else []
    )
    structlog.configure(
        # filter_by_level first: a disabled line costs one level check, not the processors.
        processors=[
            structlog.stdlib.filter_by_level,
            *SHARED,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*SHARED, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *final,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter stays at warning unless we are debugging.
    for noisy in THIRD_PARTY:
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    # uvicorn brings handlers of its own (unless started with log_config=None): drop them,
    # so its records reach the root handler and render like ours.
    for name in UVICORN:
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # Operator actions are audited whatever the level.
    logging.getLogger(AUDIT_LOGGER).setLevel(logging.INFO)
