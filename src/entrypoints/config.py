"""Settings from CHAT_OUTBOX_* environment variables, validated into one-line errors."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import TypeVar

import attrs

from chat_outbox.adapters.sql import BadDatabaseUrl, check_url
from chat_outbox.domain import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_RETRY
from chat_outbox.entrypoints.durations import parse_duration

PREFIX = "CHAT_OUTBOX_"
BUSES = ("kafka", "rabbitmq", "memory")
# aiokafka's names, kept here so reading the settings never imports the Kafka client.
KAFKA_COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
LOG_FORMATS = ("json", "console", "auto")
RELAY_CLAIMS = ("auto", "lock", "lease")
MAX_RELAY_LANES = 8
SECRET_QUERY_PARAMETER = re.compile(
    r"([?&][^=&#]*(?:password|passwd|secret|token)[^=&#]*=)[^&#]*", re.IGNORECASE
)
T = TypeVar("T")


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe for logs and error messages: the one in
    the authority, and query parameters like `password=` (libpq and asyncpg take both)."""
    url = SECRET_QUERY_PARAMETER.sub(r"\1***", url)
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


class ConfigError(ValueError):
    """Configuration that cannot work; the message is the one line the user sees."""


@attrs.frozen
class Settings:
    """chat-outbox's configuration: `Settings.from_env()`, `Settings.from_file(path)` or
    `Settings.of(name=value, ...)`; each field is the CHAT_OUTBOX_<NAME> variable."""

    database_url: str = attrs.field(
        default="sqlite+aiosqlite:///chat_outbox.sqlite3", repr=lambda url: redact_url(url)
    )
    bus: str = "kafka"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "chat-outbox.messages"
    consumer_group: str = "chat-outbox-history"
    log_format: str = "auto"
    log_level: str = "info"
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_retry: int = DEFAULT_MAX_RETRY
    relay_batch_size: int = 500
    relay_poll_interval: float = 0.05
    relay_max_poll_interval: float = 1.0
    relay_wakeup_coalesce_ms: float = 5.0
    relay_pace_ms: float = 10.0
    sweep_published_after: float = 300.0
    relay_lease_seconds: float = 60.0
    relay_claim: str = "auto"
    """lock: row locks held through the publish; lease: short claims; auto: lock on
    PostgreSQL, lease elsewhere."""
    relay_lanes: int | None = None
    """Relay loops in one process, each with its own connection and share of the
    conversations, the extra ones only during a backlog; None (auto): 2 when claims
    lock, else 1."""
    consumer_batch_size: int = 500
    consumer_writes: int | None = None
    """Batches a consumer writes at once, each in its own transaction; None (auto): 3,
    or 1 on SQLite, which lets one writer in at a time anyway."""
    retention: float = 0.0
    """Seconds a consumed row is kept before the relay purges it; 0 turns the purge off."""
    purge_interval: float = 3600.0
    purge_batch_size: int = 1000
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = attrs.field(default="", repr=False)
    kafka_ssl_cafile: str = ""
    kafka_compression: str = "none"
    kafka_enable_idempotence: bool = False
    kafka_create_topics: bool = True
    kafka_topic_partitions: int = 6
    kafka_replication_factor: int = 1
    kafka_request_timeout_ms: int = 10_000
    kafka_max_request_size: int = 1_048_576
    kafka_session_timeout_ms: int = 10_000
    kafka_heartbeat_interval_ms: int = 3_000
    kafka_rebalance_timeout_ms: int = 30_000
    kafka_fetch_max_wait_ms: int = 100
    kafka_commit_interval_ms: int = 200
    # HTTP API and metrics (`serve`; the metrics port of `relay` and `consume`).
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    http_max_body_bytes: int = 2 * 1024 * 1024
    admin_token: str = attrs.field(default="", repr=False)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    metrics_refresh_seconds: float = 15.0
    rabbitmq_url: str = attrs.field(
        default="amqp://guest:guest@127.0.0.1:5672/", repr=lambda url: redact_url(url)
    )
    rabbitmq_queues: int = 4
    rabbitmq_prefetch: int = 500
    rabbitmq_confirm_timeout_ms: int = 10_000
    rabbitmq_max_message_size: int = 16 * 1024 * 1024

    @property
    def relay_locks_claims(self) -> bool:
        if self.relay_claim == "auto":
            return check_url(self.database_url) == "postgresql"
        return self.relay_claim == "lock"

    @property
    def relay_lanes_at_once(self) -> int:
        if self.relay_lanes is not None:
            return self.relay_lanes
        return 2 if self.relay_locks_claims else 1

    @property
    def consumer_writes_at_once(self) -> int:
        if self.consumer_writes is not None:
            return self.consumer_writes
        return 1 if check_url(self.database_url) == "sqlite" else 3

    @classmethod
    def of(cls, **values: object) -> Settings:
        """Settings from arguments, checked by the same rules as the environment's."""
        from chat_outbox.entrypoints.config_file import settings_of

        return settings_of(values)

    @classmethod
    def from_file(cls, path: str, environ: Mapping[str, str] | None = None) -> Settings:
        """A TOML file's settings, under the CHAT_OUTBOX_* environment (which wins)."""
        from chat_outbox.entrypoints.config_file import load_settings

        return load_settings(environ, path).settings

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from CHAT_OUTBOX_* variables (default: os.environ); unset ones default."""
        env = os.environ if environ is None else environ
        defaults = cls()

        def get(name: str, parse: Callable[[str, str], T], default: T) -> T:
            raw = env.get(PREFIX + name.upper())
            return default if raw is None or raw == "" else parse(PREFIX + name.upper(), raw)

        settings = cls(
            database_url=get("database_url", _database_url, defaults.database_url),
            bus=get("bus", _choice(BUSES), defaults.bus),
            kafka_bootstrap_servers=get(
                "kafka_bootstrap_servers", _text, defaults.kafka_bootstrap_servers
            ),
            topic=get("topic", _topic, defaults.topic),
            consumer_group=get("consumer_group", _text, defaults.consumer_group),
            log_format=get("log_format", _choice(LOG_FORMATS), defaults.log_format),
            log_level=get(
                "log_level", _choice(("debug", "info", "warning", "error")), defaults.log_level
            ),
            max_message_bytes=get("max_message_bytes", _positive_int, defaults.max_message_bytes),
            max_retry=get("max_retry", _positive_int, defaults.max_retry),
            relay_batch_size=get("relay_batch_size", _positive_int, defaults.relay_batch_size),
            relay_poll_interval=get(
                "relay_poll_interval", _positive_float, defaults.relay_poll_interval
            ),
            relay_max_poll_interval=get(
                "relay_max_poll_interval", _positive_float, defaults.relay_max_poll_interval
            ),
            relay_pace_ms=get("relay_pace_ms", _non_negative_float, defaults.relay_pace_ms),
            relay_wakeup_coalesce_ms=get(
                "relay_wakeup_coalesce_ms", _non_negative_float, defaults.relay_wakeup_coalesce_ms
            ),
            sweep_published_after=get(
                "sweep_published_after", _non_negative_float, defaults.sweep_published_after
            ),
            relay_lease_seconds=get(
                "relay_lease_seconds", _positive_float, defaults.relay_lease_seconds
            ),
            relay_claim=get("relay_claim", _choice(RELAY_CLAIMS), defaults.relay_claim),
            relay_lanes=get("relay_lanes", _auto_or_positive_int, defaults.relay_lanes),
            consumer_batch_size=get(
                "consumer_batch_size", _positive_int, defaults.consumer_batch_size
            ),
            consumer_writes=get("consumer_writes", _auto_or_positive_int, defaults.consumer_writes),
            retention=get("retention", _seconds, defaults.retention),
            purge_interval=get("purge_interval", _positive_seconds, defaults.purge_interval),
            purge_batch_size=get("purge_batch_size", _positive_int, defaults.purge_batch_size),
            kafka_security_protocol=get(
                "kafka_security_protocol",
                _choice(KAFKA_SECURITY_PROTOCOLS, upper=True),
                defaults.kafka_security_protocol,
            ),
            kafka_sasl_mechanism=get(
                "kafka_sasl_mechanism",
                _choice(("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"), upper=True),
                defaults.kafka_sasl_mechanism,
            ),
            kafka_sasl_username=get("kafka_sasl_username", _text, ""),
            kafka_sasl_password=get("kafka_sasl_password", _raw, ""),
            kafka_ssl_cafile=get("kafka_ssl_cafile", _text, ""),
            kafka_compression=get("kafka_compression", _choice(KAFKA_COMPRESSIONS), "none"),
            kafka_enable_idempotence=get("kafka_enable_idempotence", _bool, False),
            kafka_create_topics=get("kafka_create_topics", _bool, True),
            **{
                name: get(name, _positive_int, getattr(defaults, name))
                for name in (
                    "kafka_topic_partitions",
                    "kafka_replication_factor",
                    "kafka_request_timeout_ms",
                    "kafka_max_request_size",
                    "kafka_session_timeout_ms",
                    "kafka_heartbeat_interval_ms",
                    "kafka_rebalance_timeout_ms",
                    "kafka_fetch_max_wait_ms",
                    "kafka_commit_interval_ms",
                    "rabbitmq_queues",
                    "rabbitmq_prefetch",
                    "rabbitmq_confirm_timeout_ms",
                    "rabbitmq_max_message_size",
                )
            },
            http_host=get("http_host", _text, defaults.http_host),
            http_port=get("http_port", _port(1), defaults.http_port),
            http_max_body_bytes=get(
                "http_max_body_bytes", _positive_int, defaults.http_max_body_bytes
            ),
            admin_token=get("admin_token", _text, ""),
            metrics_host=get("metrics_host", _text, defaults.metrics_host),
            metrics_port=get("metrics_port", _port(0), defaults.metrics_port),
            metrics_refresh_seconds=get(
                "metrics_refresh_seconds", _positive_float, defaults.metrics_refresh_seconds
            ),
            rabbitmq_url=get("rabbitmq_url", _amqp_url, defaults.rabbitmq_url),
        )
        if settings.relay_locks_claims:
            _check_lock_claims(settings)
        if settings.relay_lanes_at_once > MAX_RELAY_LANES:
            raise ConfigError(
                f"{PREFIX}RELAY_LANES must be at most {MAX_RELAY_LANES} (each lane holds a "
                f"database connection); run more relay processes instead"
            )
        return settings


def _check_lock_claims(settings: Settings) -> None:
    """Lock claims hold a transaction open through the publish, and the database ends one
    idle for RELAY_LEASE_SECONDS: a publish must fit well inside that, or every batch would
    be cut off after its publish and sent again, forever."""
    if check_url(settings.database_url) == "sqlite":
        raise ConfigError(
            f"{PREFIX}RELAY_CLAIM=lock needs row locks (PostgreSQL or MariaDB); "
            "SQLite relays claim with a lease"
        )
    timeout_ms, name = settings.kafka_request_timeout_ms, "KAFKA_REQUEST_TIMEOUT_MS"
    if settings.bus == "rabbitmq":
        timeout_ms, name = settings.rabbitmq_confirm_timeout_ms, "RABBITMQ_CONFIRM_TIMEOUT_MS"
    shortest = 3 * timeout_ms / 1000
    if settings.relay_lease_seconds < shortest:
        raise ConfigError(
            f"{PREFIX}RELAY_LEASE_SECONDS={settings.relay_lease_seconds:g} is too short for "
            f"lock claims: a publish may take {timeout_ms / 1000:g} s ({PREFIX}{name}); "
            f"use at least {shortest:g}, or {PREFIX}RELAY_CLAIM=lease"
        )


def _text(name: str, raw: str) -> str:
    return raw.strip()


def _database_url(name: str, raw: str) -> str:
    url = raw.strip()
    try:
        check_url(url)
    except BadDatabaseUrl as error:
        raise ConfigError(f"{name}: {error}") from None
    return url


def _amqp_url(name: str, raw: str) -> str:
    url = raw.strip()
    if not url.startswith(("amqp://", "amqps://")):
        raise ConfigError(f"{name} must be an amqp:// or amqps:// URL, got {redact_url(url)!r:.60}")
    return url


def _raw(name: str, raw: str) -> str:
    return raw


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r:.40}")


def _choice(allowed: tuple[str, ...], upper: bool = False) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r:.40}")
        return value

    return parse


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r:.40}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _auto_or_positive_int(name: str, raw: str) -> int | None:
    if raw.strip().lower() == "auto":
        return None
    try:
        return _positive_int(name, raw)
    except ConfigError:
        raise ConfigError(
            f"{name} must be auto or a positive whole number, got {raw!r:.40}"
        ) from None


def _port(lowest: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a port number, got {raw!r:.40}") from None
        if not lowest <= value <= 65535:
            raise ConfigError(f"{name} must be {lowest}-65535, got {value}")
        return value

    return parse


def _positive_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r:.40}") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name} must be a positive number, got {raw!r:.40}")
    return value


def _non_negative_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r:.40}") from None
    if not 0 <= value < float("inf"):
        raise ConfigError(f"{name} must be zero or more, got {raw!r:.40}")
    return value


def _seconds(name: str, raw: str) -> float:
    """A duration with a unit (7d, 12h) or a number of seconds."""
    try:
        return _non_negative_float(name, raw)
    except ConfigError:
        pass
    try:
        return parse_duration(raw).total_seconds()
    except ValueError as error:
        raise ConfigError(f"{name}: {error}") from None


def _positive_seconds(name: str, raw: str) -> float:
    value = _seconds(name, raw)
    if value <= 0:
        raise ConfigError(f"{name} must be a positive duration, got {raw!r:.40}")
    return value


def _topic(name: str, raw: str) -> str:
    value = raw.strip()
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    if not 1 <= len(value) <= 249 or not set(value) <= allowed or value in (".", ".."):
        raise ConfigError(f"{name} must be 1-249 of [a-zA-Z0-9._-], got {raw!r:.40}")
    return value
