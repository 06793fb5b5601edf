"""The relay's side of Kafka: publish a batch concurrently, one outcome per record."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NodeNotReadyError,
    RecordListTooLargeError,
    RecordTooLargeError,
    RequestTimedOutError,
)

from adapters.kafka.options import KafkaOptions, started
from adapters.kafka.topics import ensure_topics
from application.ports import MessageBus, OutgoingRecord, PublishResult
from domain import PublishFailure

log = structlog.get_logger(__name__)

# Failures that belong to the record itself: retrying the same bytes can never succeed.
# Everything else (connection, timeouts, leadership, authorisation) is the cluster's state.
FATAL_ERRORS = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
)


# The cluster could not be reached at all: not the message's fault, so not one of its attempts.
UNAVAILABLE_ERRORS = (
    KafkaConnectionError,
    NodeNotReadyError,
    RequestTimedOutError,
    KafkaTimeoutError,
)


def classify(error: BaseException) -> PublishFailure:
    reason = f"{type(error).__name__}: {error}".strip().rstrip(":")
    if isinstance(error, FATAL_ERRORS):
        return PublishFailure.fatal(reason)
    if isinstance(error, UNAVAILABLE_ERRORS):
        return PublishFailure.unavailable(reason)
    return PublishFailure(reason)


class KafkaBus(MessageBus):
    """Starts its producer lazily, so a broker that is down at start-up is a retryable
    publish failure (backed off per message), not a crashed relay."""

    def __init__(self, options: KafkaOptions, provision_topic: str | None = None) -> None:
        self._options = options
        self._provision_topic = provision_topic
        self._producer: AIOKafkaProducer | None = None

    async def publish(self, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        if not records:
            return []
        try:
            producer = await self._started()
        except KafkaError as error:
            failure = PublishFailure.unavailable(
                f"broker unavailable: {type(error).__name__}: {error}"
            )
            return [failure] * len(records)
        pending: list[asyncio.Future[object] | PublishFailure] = []
        for index, record in enumerate(records):
            try:
                pending.append(
                    await producer.send(
                        record.topic,
                        value=record.value,
                        key=record.key.encode(),
                        headers=list(record.headers),
                    )
                )
            except KafkaError as error:
                failure = classify(error)
                if failure.retryable:
                    # The cluster is unreachable: do not wait out a timeout per record.
                    rest = PublishFailure.unavailable(f"not sent: {failure.reason}")
                    pending.append(failure)
                    pending.extend([rest] * (len(records) - index - 1))
                    break
                pending.append(failure)
        return await _outcomes(pending)

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            if self._provision_topic is not None:
                await ensure_topics(self._options, self._provision_topic)
            self._producer = await started(AIOKafkaProducer(**self._options.producer()))
            log.info("kafka_producer_started", bootstrap=self._options.bootstrap_servers)
        return self._producer

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()


async def _outcomes(pending: list[asyncio.Future[object] | PublishFailure]) -> list[PublishResult]:
    """Each record's outcome, awaited in turn rather than gathered: a batch's futures resolve
    together, so most are done when reached, and a done future costs no callback, no loop
    turn (gather schedules one per record)."""
    results: list[PublishResult] = []
    for item in pending:
        if isinstance(item, PublishFailure):
            results.append(item)
            continue
        try:
            await item
        except Exception as error:  # noqa: BLE001 - every failure is this record's outcome
            # (a cancellation is no Exception: it propagates)
            results.append(classify(error))
            continue
        results.append(None)
    return results
