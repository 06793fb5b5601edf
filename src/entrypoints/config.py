"""Settings from CHAT_OUTBOX_* environment variables, validated into one-line errors."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TypeVar

import attrs

from chat_outbox.adapters.sql import check_url
from chat_outbox.domain import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_RETRY
from chat_outbox.entrypoints import config_parsers as parsers
from chat_outbox.entrypoints.config_parsers import PREFIX as PREFIX
from chat_outbox.entrypoints.config_parsers import ConfigError as ConfigError
from chat_outbox.entrypoints.config_parsers import redact_url as redact_url

BUSES = ("kafka", "rabbitmq", "memory")
# aiokafka's names, kept here so reading the settings never imports the Kafka client.
KAFKA_COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
LOG_FORMATS = ("json", "console", "auto")
RELAY_CLAIMS = ("auto", "lock", "lease")
MAX_RELAY_LANES = 8
DAY = 86_400
YEAR = 365 * DAY
MIB = 1024 * 1024
LIMITS: dict[str, tuple[int | float, int | float]] = {
    # Each numeric setting's least and most value. A float whose parser wants it positive
    # excludes its least, 0. Seconds stay within a year and milliseconds within a day, so
    # no timer, timeout or date sum can overflow; the lease within a week, as PostgreSQL
    # holds idle_in_transaction_session_timeout in 32-bit milliseconds (24.8 days).
    "max_message_bytes": (1, 64 * MIB),
    "max_retry": (1, 10_000),
    "relay_batch_size": (1, 100_000),
    "relay_poll_interval": (0, YEAR),
    "relay_max_poll_interval": (0, YEAR),
    "relay_wakeup_coalesce_ms": (0, DAY * 1000),
    "relay_pace_ms": (0, DAY * 1000),
    "sweep_published_after": (0, YEAR),
    "relay_lease_seconds": (0, 7 * DAY),
    "relay_lanes": (1, MAX_RELAY_LANES),
    "consumer_batch_size": (1, 100_000),
    "consumer_writes": (1, 64),
    "retention": (0, 10 * YEAR),
    "purge_interval": (0, YEAR),
    "purge_batch_size": (1, 100_000),
    "kafka_topic_partitions": (1, 100_000),
    "kafka_replication_factor": (1, 32_767),  # an INT16 in Kafka's protocol
    "kafka_request_timeout_ms": (1, DAY * 1000),
    "kafka_max_request_size": (1, 1024 * MIB),
    "kafka_session_timeout_ms": (1, DAY * 1000),
    "kafka_heartbeat_interval_ms": (1, DAY * 1000),
    "kafka_rebalance_timeout_ms": (1, DAY * 1000),
    "kafka_fetch_max_wait_ms": (1, DAY * 1000),
    "kafka_commit_interval_ms": (1, DAY * 1000),
    "http_port": (1, 65_535),
    "http_max_body_bytes": (1, 1024 * MIB),
    # The HTTP server's own, as its parsers check them too.
    "http_max_response_bytes": (1024, 1024 * MIB),
    "http_header_timeout_seconds": (0, 3600),
    "http_body_timeout_seconds": (0, 3600),
    "http_keep_alive_seconds": (0, 3600),
    "http_max_connections": (1, 1_000_000),
    "metrics_port": (0, 65_535),
    "metrics_refresh_seconds": (0, YEAR),
    "rabbitmq_queues": (1, 1024),
    "rabbitmq_prefetch": (1, 65_535),  # AMQP's prefetch count is 16 bits
    "rabbitmq_confirm_timeout_ms": (1, DAY * 1000),
    "rabbitmq_max_message_size": (1, 512 * MIB),  # RabbitMQ's own ceiling
}
T = TypeVar("T")


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
    admin_trace_url: str = ""
    """The dashboard's link to a trace viewer, with {trace_id} where the trace id goes."""
    http_max_response_bytes: int = 8 * 1024 * 1024
    """A history page stops before it grows past this (it always holds one message)."""
    http_header_timeout_seconds: float = 10.0
    http_body_timeout_seconds: float = 30.0
    http_keep_alive_seconds: float = 5.0
    http_max_connections: int = 1000
    """Connections and requests `serve` handles at once; beyond them it answers 503."""
    # Message routes' authentication (bearer JWTs); off unless a secret or key file is set.
    auth_jwt_secret: str = attrs.field(default="", repr=False)
    auth_jwt_public_key_file: str = ""
    auth_jwt_algorithms: str = ""
    """Comma-separated; empty: HS256 with a secret, else the key's own (RS256, ES256...)."""
    auth_user_claim: str = "sub"
    auth_audience: str = ""
    auth_issuer: str = ""
    auth_service_scope: str = "chat-outbox:service"
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
    def auth_enabled(self) -> bool:
        """Whether the message routes ask for a bearer JWT."""
        return bool(self.auth_jwt_secret or self.auth_jwt_public_key_file)

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
            if raw is None or raw == "":
                return default
            return within_limits(name, parse(PREFIX + name.upper(), parsers.utf8(name, raw)))

        settings = cls(
            database_url=get("database_url", parsers.database_url, defaults.database_url),
            bus=get("bus", parsers.choice(BUSES), defaults.bus),
            kafka_bootstrap_servers=get(
                "kafka_bootstrap_servers", parsers.servers, defaults.kafka_bootstrap_servers
            ),
            topic=get("topic", parsers.topic, defaults.topic),
            consumer_group=get("consumer_group", parsers.text, defaults.consumer_group),
            log_format=get("log_format", parsers.choice(LOG_FORMATS), defaults.log_format),
            log_level=get(
                "log_level",
                parsers.choice(("debug", "info", "warning", "error")),
                defaults.log_level,
            ),
            max_message_bytes=get(
                "max_message_bytes", parsers.positive_int, defaults.max_message_bytes
            ),
            max_retry=get("max_retry", parsers.positive_int, defaults.max_retry),
            relay_batch_size=get(
                "relay_batch_size", parsers.positive_int, defaults.relay_batch_size
            ),
            relay_poll_interval=get(
                "relay_poll_interval", parsers.positive_float, defaults.relay_poll_interval
            ),
            relay_max_poll_interval=get(
                "relay_max_poll_interval", parsers.positive_float, defaults.relay_max_poll_interval
            ),
            relay_pace_ms=get("relay_pace_ms", parsers.non_negative_float, defaults.relay_pace_ms),
            relay_wakeup_coalesce_ms=get(
                "relay_wakeup_coalesce_ms",
                parsers.non_negative_float,
                defaults.relay_wakeup_coalesce_ms,
            ),
            sweep_published_after=get(
                "sweep_published_after", parsers.non_negative_float, defaults.sweep_published_after
            ),
            relay_lease_seconds=get(
                "relay_lease_seconds", parsers.positive_float, defaults.relay_lease_seconds
            ),
            relay_claim=get("relay_claim", parsers.choice(RELAY_CLAIMS), defaults.relay_claim),
            relay_lanes=get("relay_lanes", parsers.auto_or_positive_int, defaults.relay_lanes),
            consumer_batch_size=get(
                "consumer_batch_size", parsers.positive_int, defaults.consumer_batch_size
            ),
            consumer_writes=get(
                "consumer_writes", parsers.auto_or_positive_int, defaults.consumer_writes
            ),
            retention=get("retention", parsers.seconds, defaults.retention),
            purge_interval=get("purge_interval", parsers.positive_seconds, defaults.purge_interval),
            purge_batch_size=get(
                "purge_batch_size", parsers.positive_int, defaults.purge_batch_size
            ),
            kafka_security_protocol=get(
                "kafka_security_protocol",
                parsers.choice(KAFKA_SECURITY_PROTOCOLS, upper=True),
                defaults.kafka_security_protocol,
            ),
            kafka_sasl_mechanism=get(
                "kafka_sasl_mechanism",
                parsers.choice(("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"), upper=True),
                defaults.kafka_sasl_mechanism,
            ),
            kafka_sasl_username=get("kafka_sasl_username", parsers.text, ""),
            kafka_sasl_password=get("kafka_sasl_password", parsers.verbatim, ""),
            kafka_ssl_cafile=get("kafka_ssl_cafile", parsers.text, ""),
            kafka_compression=get("kafka_compression", parsers.choice(KAFKA_COMPRESSIONS), "none"),
            kafka_enable_idempotence=get("kafka_enable_idempotence", parsers.boolean, False),
            kafka_create_topics=get("kafka_create_topics", parsers.boolean, True),
            **{
                name: get(name, parsers.positive_int, getattr(defaults, name))
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
            http_host=get("http_host", parsers.text, defaults.http_host),
            http_port=get("http_port", parsers.port(1), defaults.http_port),
            http_max_body_bytes=get(
                "http_max_body_bytes", parsers.positive_int, defaults.http_max_body_bytes
            ),
            admin_token=get("admin_token", parsers.text, ""),
            admin_trace_url=get("admin_trace_url", parsers.trace_url, ""),
            http_max_response_bytes=get(
                "http_max_response_bytes", parsers.positive_int, defaults.http_max_response_bytes
            ),
            **{
                name: get(name, parsers.positive_float, getattr(defaults, name))
                for name in (
                    "http_header_timeout_seconds",
                    "http_body_timeout_seconds",
                    "http_keep_alive_seconds",
                )
            },
            http_max_connections=get(
                "http_max_connections", parsers.positive_int, defaults.http_max_connections
            ),
            auth_jwt_secret=get("auth_jwt_secret", _jwt_secret, ""),
            auth_jwt_public_key_file=get("auth_jwt_public_key_file", parsers.text, ""),
            auth_jwt_algorithms=get("auth_jwt_algorithms", _jwt_algorithms, ""),
            auth_user_claim=get("auth_user_claim", parsers.text, defaults.auth_user_claim),
            auth_audience=get("auth_audience", parsers.text, ""),
            auth_issuer=get("auth_issuer", parsers.text, ""),
            auth_service_scope=get("auth_service_scope", parsers.text, defaults.auth_service_scope),
            metrics_host=get("metrics_host", parsers.text, defaults.metrics_host),
            metrics_port=get("metrics_port", parsers.port(0), defaults.metrics_port),
            metrics_refresh_seconds=get(
                "metrics_refresh_seconds", parsers.positive_float, defaults.metrics_refresh_seconds
            ),
            rabbitmq_url=get("rabbitmq_url", parsers.amqp_url, defaults.rabbitmq_url),
        )
        if settings.relay_locks_claims:
            _check_lock_claims(settings)
        _check_auth(settings)
        if settings.relay_lanes_at_once > MAX_RELAY_LANES:
            raise ConfigError(
                f"{PREFIX}RELAY_LANES must be at most {MAX_RELAY_LANES} (each lane holds a "
                f"database connection); run more relay processes instead"
            )
        return settings


def within_limits(name: str, value: T) -> T:
    """The value when it is within the setting's LIMITS (if it has any), else ConfigError."""
    if name not in LIMITS or not isinstance(value, int | float) or isinstance(value, bool):
        return value
    least, most = LIMITS[name]
    number: float = value
    # A float as 1e+308; a whole number of up to 4,300 digits (int's limit) by its length.
    shown = f"{number:.6g}" if isinstance(number, float) else str(number)
    if isinstance(number, int) and len(shown) > 20:
        shown = f"a {len(shown)}-digit number"
    if number > most:
        raise ConfigError(f"{PREFIX}{name.upper()} must be at most {most}, got {shown}")
    if number < least:
        raise ConfigError(f"{PREFIX}{name.upper()} must be at least {least}, got {shown}")
    return value


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


JWT_SYMMETRIC = ("HS256", "HS384", "HS512")
JWT_ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
MIN_JWT_SECRET_BYTES = 32
"""RFC 7518 3.2: an HMAC key at least as long as the hash (256 bits for HS256)."""


def _check_auth(settings: Settings) -> None:
    """One kind of key at a time, and algorithms that fit it: a token is never verified
    with an algorithm the operator did not choose for that key."""
    secret, key_file = settings.auth_jwt_secret, settings.auth_jwt_public_key_file
    algorithms = [a for a in settings.auth_jwt_algorithms.split(",") if a]
    if secret and key_file:
        raise ConfigError(
            f"{PREFIX}AUTH_JWT_SECRET and {PREFIX}AUTH_JWT_PUBLIC_KEY_FILE are both set; choose one"
        )
    if algorithms and not settings.auth_enabled:
        raise ConfigError(
            f"{PREFIX}AUTH_JWT_ALGORITHMS needs {PREFIX}AUTH_JWT_SECRET or "
            f"{PREFIX}AUTH_JWT_PUBLIC_KEY_FILE"
        )
    wrong = [a for a in algorithms if (a in JWT_SYMMETRIC) != bool(secret)]
    if wrong:
        kind = (
            "a shared secret takes HS256/384/512" if secret else "a public key takes RS, PS or ES"
        )
        raise ConfigError(f"{PREFIX}AUTH_JWT_ALGORITHMS has {wrong[0]}, but {kind}")
    if settings.auth_enabled and not settings.auth_user_claim:
        raise ConfigError(f"{PREFIX}AUTH_USER_CLAIM must name a claim")


def _jwt_secret(name: str, raw: str) -> str:
    if len(raw.encode()) < MIN_JWT_SECRET_BYTES:
        raise ConfigError(f"{name} must be at least {MIN_JWT_SECRET_BYTES} bytes")
    return raw


def _jwt_algorithms(name: str, raw: str) -> str:
    chosen = [a.strip().upper() for a in raw.split(",") if a.strip()]
    allowed = JWT_SYMMETRIC + JWT_ASYMMETRIC
    for algorithm in chosen:
        if algorithm not in allowed:
            raise ConfigError(
                f"{name} must be a comma-separated list of {', '.join(allowed)}, "
                f"got {algorithm!r:.20}"
            )
    return ",".join(chosen)
