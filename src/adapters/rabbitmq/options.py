"""Connection and tuning options for the RabbitMQ adapters, with the password kept out of logs."""

from __future__ import annotations

import attrs
from yarl import URL

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


def redact(url: str) -> str:
    """The URL with its password replaced, safe for logs and error messages."""
    try:
        parsed = URL(url)
    except ValueError:
        return "<unparsable AMQP URL>"
    return str(parsed.with_password("***")) if parsed.password else url


@attrs.frozen
class RabbitOptions:
    url: str = attrs.field(default=DEFAULT_URL, repr=redact)
    queues: int = 4
    """Queues a topic is spread over by a hash of the key: at most this many consumers
    are active at once, each alone on its queues (single active consumer)."""
    prefetch: int = 500
    """Unacknowledged deliveries per queue a consumer may hold."""
    confirm_timeout: float = 10.0
    connect_timeout: float = 5.0
    max_message_size: int = 16 * 1024 * 1024
    """A bigger record is dead at once. Keep it at or below the broker's max_message_size,
    which otherwise closes the channel on such a record."""

    @property
    def safe_url(self) -> str:
        return redact(self.url)

    def scrub(self, text: str) -> str:
        """`text` (say, an error message) with the password removed, should it appear."""
        password = URL(self.url).password
        return text.replace(password, "***") if password else text
