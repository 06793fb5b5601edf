"""RabbitMQ outcome mapping and settings: nack and return are counted retries, an
unreachable broker or a lost confirm is not counted, and the password stays out of sight."""

from __future__ import annotations

import pytest
from aio_pika.exceptions import ChannelInvalidStateError, ConnectionClosed, DeliveryError
from pamqp.commands import Basic

from chat_outbox.adapters.rabbitmq import classify, redact
from chat_outbox.entrypoints.config import ConfigError, Settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("error", "retryable", "counted"),
    [
        (DeliveryError(None, Basic.Nack(delivery_tag=1)), True, True),
        (TimeoutError(), True, False),
        (ConnectionClosed(320, "CONNECTION_FORCED"), True, False),
        (ChannelInvalidStateError("closed"), True, False),
        (ConnectionRefusedError(111, "refused"), True, False),
    ],
)
def test_each_publish_error_maps_to_its_outcome(
    error: BaseException, retryable: bool, counted: bool
) -> None:
    """A nack is the broker's refusal (counted); no answer at all costs no attempt."""
    failure = classify(error)
    assert (failure.retryable, failure.counted) == (retryable, counted)


def test_a_nack_is_named_in_the_reason() -> None:
    """The reason of a nacked publish says the broker refused it."""
    assert (
        "nacked by the broker" in classify(DeliveryError(None, Basic.Nack(delivery_tag=3))).reason
    )


def test_rabbitmq_settings_come_from_the_environment() -> None:
    """CHAT_OUTBOX_BUS=rabbitmq with the CHAT_OUTBOX_RABBITMQ_* variables are read."""
    settings = Settings.from_env(
        {
            "CHAT_OUTBOX_BUS": "rabbitmq",
            "CHAT_OUTBOX_RABBITMQ_URL": "amqps://app:pw@rabbit.internal:5671/chat",
            "CHAT_OUTBOX_RABBITMQ_QUEUES": "8",
            "CHAT_OUTBOX_RABBITMQ_PREFETCH": "100",
            "CHAT_OUTBOX_RABBITMQ_CONFIRM_TIMEOUT_MS": "2500",
        }
    )
    assert settings.core.bus == "rabbitmq"
    assert settings.rabbitmq.url == "amqps://app:pw@rabbit.internal:5671/chat"
    assert (settings.rabbitmq.queues, settings.rabbitmq.prefetch) == (8, 100)
    assert settings.rabbitmq.confirm_timeout_ms == 2500


def test_the_rabbitmq_password_never_shows() -> None:
    """Neither the settings' repr nor a bad-URL error shows the password."""
    settings = Settings.from_env({"CHAT_OUTBOX_RABBITMQ_URL": "amqp://app:s3cret@host/"})
    assert "s3cret" not in repr(settings)
    assert redact("amqp://app:s3cret@host/") == "amqp://app:***@host/"
    with pytest.raises(ConfigError, match="amqp:// or amqps://") as refused:
        Settings.from_env({"CHAT_OUTBOX_RABBITMQ_URL": "http://app:s3cret@host/"})
    assert "s3cret" not in str(refused.value)
