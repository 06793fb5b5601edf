"""chat-outbox's Settings: seven sections (config_sections, config_buses, config_http),
read from CHAT_OUTBOX_* variables, a TOML file or arguments, validated into one-line
errors; the checks that span sections and the values derived from several settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs

from chat_outbox.adapters.sql import check_url
from chat_outbox.entrypoints.config_buses import KafkaSettings, RabbitMqSettings
from chat_outbox.entrypoints.config_http import JWT_ASYMMETRIC as JWT_ASYMMETRIC
from chat_outbox.entrypoints.config_http import JWT_SYMMETRIC as JWT_SYMMETRIC
from chat_outbox.entrypoints.config_http import HttpSettings, MetricsSettings
from chat_outbox.entrypoints.config_parsers import PREFIX as PREFIX
from chat_outbox.entrypoints.config_parsers import ConfigError as ConfigError
from chat_outbox.entrypoints.config_parsers import redact_url as redact_url
from chat_outbox.entrypoints.config_schema import (
    ENV_PREFIX,
    Declaration,
    build,
    declarations_of,
)
from chat_outbox.entrypoints.config_sections import BUSES as BUSES
from chat_outbox.entrypoints.config_sections import (
    MAX_RELAY_LANES,
    ConsumerSettings,
    CoreSettings,
    RelaySettings,
)


@attrs.frozen
class Settings:
    """chat-outbox's configuration: `Settings.from_env()`, `Settings.from_file(path)` or
    `Settings.of(name=value, ...)`, where each name is a CHAT_OUTBOX_<NAME> variable's.
    Read it by section: `settings.core.topic`, `settings.relay.batch_size`."""

    core: CoreSettings = attrs.field(factory=CoreSettings, metadata={ENV_PREFIX: ""})
    relay: RelaySettings = attrs.field(factory=RelaySettings)
    consumer: ConsumerSettings = attrs.field(factory=ConsumerSettings)
    kafka: KafkaSettings = attrs.field(factory=KafkaSettings)
    rabbitmq: RabbitMqSettings = attrs.field(factory=RabbitMqSettings)
    http: HttpSettings = attrs.field(factory=HttpSettings)
    metrics: MetricsSettings = attrs.field(factory=MetricsSettings)

    def __attrs_post_init__(self) -> None:
        if self.relay_locks_claims:
            self._check_lock_claims()
        if self.relay_lanes_at_once > MAX_RELAY_LANES:
            raise ConfigError(
                f"{PREFIX}RELAY_LANES must be at most {MAX_RELAY_LANES} (each lane holds a "
                f"database connection); run more relay processes instead"
            )

    @property
    def relay_locks_claims(self) -> bool:
        if self.relay.claim == "auto":
            return check_url(self.core.database_url) == "postgresql"
        return self.relay.claim == "lock"

    @property
    def relay_lanes_at_once(self) -> int:
        if self.relay.lanes is not None:
            return self.relay.lanes
        return 2 if self.relay_locks_claims else 1

    @property
    def consumer_writes_at_once(self) -> int:
        if self.consumer.writes is not None:
            return self.consumer.writes
        return 1 if check_url(self.core.database_url) == "sqlite" else 3

    @classmethod
    def of(cls, **values: object) -> Settings:
        """Settings from arguments named like the variables without CHAT_OUTBOX_, in lower
        case (`relay_batch_size=10`), checked by the same rules as the environment's."""
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
        values = {
            declaration: declaration.read(raw)
            for declaration in DECLARATIONS
            if (raw := env.get(declaration.variable))
        }
        return build(cls, values)

    def value(self, declaration: Declaration) -> Any:
        """The setting's value: `settings.value(BY_KEY["relay_batch_size"])`."""
        return getattr(getattr(self, declaration.section), declaration.name)

    def _check_lock_claims(self) -> None:
        """Lock claims hold a transaction open through the publish, and the database ends
        one idle for RELAY_LEASE_SECONDS: a publish must fit well inside that, or every
        batch would be cut off after its publish and sent again, forever."""
        if check_url(self.core.database_url) == "sqlite":
            raise ConfigError(
                f"{PREFIX}RELAY_CLAIM=lock needs row locks (PostgreSQL or MariaDB); "
                "SQLite relays claim with a lease"
            )
        timeout_ms, name = self.kafka.request_timeout_ms, "KAFKA_REQUEST_TIMEOUT_MS"
        if self.core.bus == "rabbitmq":
            timeout_ms, name = self.rabbitmq.confirm_timeout_ms, "RABBITMQ_CONFIRM_TIMEOUT_MS"
        shortest = 3 * timeout_ms / 1000
        lease = self.relay.lease_seconds
        if lease < shortest:
            raise ConfigError(
                f"{PREFIX}RELAY_LEASE_SECONDS={lease:g} is too short for lock claims: a "
                f"publish may take {timeout_ms / 1000:g} s ({PREFIX}{name}); use at least "
                f"{shortest:g}, or {PREFIX}RELAY_CLAIM=lease"
            )


DECLARATIONS: tuple[Declaration, ...] = declarations_of(Settings)
"""Every setting, once, in section order."""
BY_KEY: dict[str, Declaration] = {declaration.key: declaration for declaration in DECLARATIONS}
LIMITS: dict[str, tuple[float, float]] = {
    d.key: (d.spec.least, d.spec.most)
    for d in DECLARATIONS
    if d.spec.least is not None and d.spec.most is not None
}
"""Each numeric setting's least and most value, by key, as declared."""
