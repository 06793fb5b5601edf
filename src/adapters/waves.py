"""Key order for a bus whose records of one call travel independently: send the call in
waves, the nth holding each key's nth record, so a failed record stops its key (the bus
port's contract) at the cost of one round trip per wave, not one per record."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from chat_outbox.application.ports import OutgoingRecord, PublishResult
from chat_outbox.domain import PublishFailure

Send = Callable[[Sequence[OutgoingRecord]], Awaitable[list[PublishResult]]]


async def publish_in_waves(records: Sequence[OutgoingRecord], send: Send) -> list[PublishResult]:
    """Publish `records` through `send`, one wave at a time; a key whose record failed
    sends nothing more, and its later records report that they were not sent."""
    results: list[PublishResult] = [None] * len(records)
    stopped: dict[str, PublishFailure] = {}
    for wave in waves(records):
        sendable = []
        for index in wave:
            failure = stopped.get(records[index].key)
            if failure is None:
                sendable.append(index)
            else:
                reason = f"not sent: an earlier record of its key failed: {failure.reason}"
                results[index] = PublishFailure.unavailable(reason)
        if not sendable:
            continue
        sent = await send([records[index] for index in sendable])
        for index, result in zip(sendable, sent, strict=True):
            results[index] = result
            if result is not None:
                stopped[records[index].key] = result
    return results


def waves(records: Sequence[OutgoingRecord]) -> list[list[int]]:
    """Record indices: the nth list holds each key's nth record, in call order. A call
    with one record per key is one wave."""
    found: list[list[int]] = []
    depth: dict[str, int] = {}
    for index, record in enumerate(records):
        n = depth.get(record.key, 0)
        depth[record.key] = n + 1
        if n == len(found):
            found.append([])
        found[n].append(index)
    return found
