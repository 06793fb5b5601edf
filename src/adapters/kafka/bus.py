"""The relay's side of Kafka: publish a batch, one outcome per record."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from chat_outbox.adapters.kafka.batches import BatchPublication
from chat_outbox.adapters.kafka.options import KafkaOptions, started
from chat_outbox.adapters.kafka.topics import ensure_topics
from chat_outbox.adapters.waves import publish_in_waves
from chat_outbox.application.ports import MessageBus, OutgoingRecord, PublishResult
from chat_outbox.domain import PublishFailure

log = structlog.get_logger(__name__)


class KafkaBus(MessageBus):
    """Starts its producer lazily, so a broker that is down at start-up is a retryable
    publish failure (backed off per message), not a crashed relay."""

    def __init__(
        self, options: KafkaOptions, provision_topic: str | None = None, also: Sequence[str] = ()
    ) -> None:
        """Creates `provision_topic` (and the topics `also` names) if missing, when given."""
        self._options = options
        self._provision = () if provision_topic is None else (provision_topic, *also)
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
        if len({record.topic for record in records}) == 1:
            # A key's records share one partition, and so one record batch per round.
            return await self._publish(producer, records)
        # Over several topics a key's records travel in different partitions' batches.
        return await publish_in_waves(records, partial(self._publish, producer))

    async def _publish(
        self, producer: AIOKafkaProducer, records: Sequence[OutgoingRecord]
    ) -> list[PublishResult]:
        publication = BatchPublication(producer, records, self._options.max_request_size)
        return await publication.run()

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            for topic in self._provision:
                await ensure_topics(self._options, topic)
            self._producer = await started(AIOKafkaProducer(**self._options.producer()))
            log.info("kafka_producer_started", bootstrap=self._options.bootstrap_servers)
        return self._producer

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()
