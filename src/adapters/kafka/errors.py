"""Which aiokafka errors are the record's own fault, and which are the cluster's state."""

from __future__ import annotations

from aiokafka.errors import (
    InvalidTopicError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NodeNotReadyError,
    RecordListTooLargeError,
    RecordTooLargeError,
    RequestTimedOutError,
)

from chat_outbox.domain import PublishFailure

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
