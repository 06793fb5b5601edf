"""The settings, section by section, each declared once: default, parser, limits, secrecy
and a one-line doc. A field's variable is CHAT_OUTBOX_<SECTION>_<NAME> (core's have no
section) unless its declaration names another (`env=`)."""

from __future__ import annotations

import attrs

from chat_outbox.domain import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_RETRY
from chat_outbox.entrypoints import config_parsers as parsers
from chat_outbox.entrypoints.config_schema import setting

BUSES = ("kafka", "rabbitmq", "memory")
# aiokafka's names, kept here so reading the settings never imports the Kafka client.
KAFKA_COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
LOG_FORMATS = ("json", "console", "auto")
LOG_LEVELS = ("debug", "info", "warning", "error")
RELAY_CLAIMS = ("auto", "lock", "lease")
MAX_RELAY_LANES = 8
# Seconds stay within a year and milliseconds within a day, so no timer, timeout or date
# sum can overflow; the lease within a week, as PostgreSQL holds
# idle_in_transaction_session_timeout in 32-bit milliseconds (24.8 days). A float whose
# parser wants it positive excludes its least, 0.
DAY = 86_400
YEAR = 365 * DAY
DAY_MS = DAY * 1000
MIB = 1024 * 1024
BATCH = 100_000


@attrs.frozen
class CoreSettings:
    """Where messages are kept and sent, and how the processes log."""

    database_url: str = setting(
        "sqlite+aiosqlite:///chat_outbox.sqlite3",
        parsers.database_url,
        "SQLAlchemy async URL: sqlite+aiosqlite://, postgresql+asyncpg:// or mysql+asyncmy://",
        url=True,
    )
    bus: str = setting(
        "kafka", parsers.choice(BUSES), "The message bus; memory only inside `chat-outbox demo`"
    )
    topic: str = setting(
        "chat-outbox.messages",
        parsers.topic,
        "The chat topic; its dead letters go to `<topic>.dlq`",
    )
    log_format: str = setting(
        "auto", parsers.choice(LOG_FORMATS), "json, console, or auto: JSON unless a terminal"
    )
    log_level: str = setting("info", parsers.choice(LOG_LEVELS), "The least level logged")
    max_message_bytes: int = setting(
        DEFAULT_MAX_MESSAGE_BYTES,
        parsers.positive_int,
        "A message's size limit in UTF-8 bytes",
        least=1,
        most=64 * MIB,
    )
    max_retry: int = setting(
        DEFAULT_MAX_RETRY,
        parsers.positive_int,
        "Publish attempts before a row goes dead",
        least=1,
        most=10_000,
    )
    events: str = setting(
        "",
        parsers.import_path,
        "The host's EventRegistry as package.module:name: the event types the relay "
        "publishes and the handlers the consumer runs (empty: chat messages only)",
    )


@attrs.frozen
class RelaySettings:
    """The relay: outbox rows to the bus, the stale-published sweep and the purge."""

    batch_size: int = setting(500, parsers.positive_int, "Rows per claim", least=1, most=BATCH)
    poll_interval: float = setting(
        0.05,
        parsers.positive_float,
        "Shortest wait between polls when idle, in seconds",
        least=0,
        most=YEAR,
    )
    max_poll_interval: float = setting(
        1.0,
        parsers.positive_float,
        "Longest wait between polls when idle, in seconds",
        least=0,
        most=YEAR,
    )
    wakeup_coalesce_ms: float = setting(
        5.0,
        parsers.non_negative_float,
        "Pause after a wake-up before claiming, in milliseconds",
        least=0,
        most=DAY_MS,
    )
    pace_ms: float = setting(
        10.0,
        parsers.non_negative_float,
        "At a trickle, the least time between the starts of two rounds (ms; 0: back to back)",
        least=0,
        most=DAY_MS,
    )
    sweep_published_after: float = setting(
        300.0,
        parsers.non_negative_float,
        "Seconds after which a published, unconsumed row is published again (0: off)",
        env="SWEEP_PUBLISHED_AFTER",
        least=0,
        most=YEAR,
    )
    lease_seconds: float = setting(
        60.0,
        parsers.positive_float,
        "How long a claim hides rows from other relays; the longest idle transaction",
        least=0,
        most=7 * DAY,
    )
    claim: str = setting(
        "auto",
        parsers.choice(RELAY_CLAIMS),
        "lock: row locks held through the publish; lease: short claims; auto: lock on "
        "PostgreSQL, lease elsewhere",
    )
    lanes: int | None = setting(
        None,
        parsers.auto_or_positive_int,
        "Relay loops in one process, the extra ones only during a backlog; "
        "auto (None): 2 when claims lock, else 1",
        least=1,
        most=MAX_RELAY_LANES,
    )
    retention: float = setting(
        0.0,
        parsers.seconds,
        "The relay purges consumed rows older than this: a duration (7d) or seconds; 0: off",
        env="RETENTION",
        least=0,
        most=10 * YEAR,
    )
    purge_interval: float = setting(
        3600.0,
        parsers.positive_seconds,
        "How often the relay purges: a duration (1h) or seconds",
        env="PURGE_INTERVAL",
        least=0,
        most=YEAR,
    )
    purge_batch_size: int = setting(
        1000,
        parsers.positive_int,
        "Rows per purge transaction, for the relay and `purge`",
        env="PURGE_BATCH_SIZE",
        least=1,
        most=BATCH,
    )


@attrs.frozen
class ConsumerSettings:
    """The consumer: bus to chat history."""

    group: str = setting("chat-outbox-history", parsers.text, "The consumer group id (Kafka)")
    batch_size: int = setting(
        500, parsers.positive_int, "Records per consumed batch", least=1, most=BATCH
    )
    writes: int | None = setting(
        None,
        parsers.auto_or_positive_int,
        "Batches written at once, each in its own transaction; auto (None): 3, or 1 on SQLite "
        "or with event handlers",
        least=1,
        most=64,
    )
    handler_attempts: int = setting(
        5,
        parsers.positive_int,
        "Tries of an event handler that keeps raising before its event is dead-lettered",
        least=1,
        most=1000,
    )
