"""The end-of-run checks: exactly once, nothing dead, recording order, no backward moves."""

from __future__ import annotations

from collections import Counter

import asyncpg  # type: ignore[import-untyped]
import attrs

from chaos.recorder import Recorded
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.application.operate.operations import read_history
from chat_outbox.domain import TABLE, OutboxStatus


@attrs.frozen
class Verdict:
    violations: list[str]
    figures: dict[str, object]

    @property
    def passed(self) -> bool:
        return not self.violations


def allowed_moves() -> set[tuple[str | None, str]]:
    """Every (old, new) status pair the domain's state table allows, plus the insert."""
    moves: set[tuple[str | None, str]] = {(None, OutboxStatus.PENDING.value)}
    for status, row in TABLE.items():
        for target in row.values():
            if isinstance(target, OutboxStatus) and target is not status:
                moves.add((status.value, target.value))
    return moves


async def judge(conn: asyncpg.Connection, uow: SqlUnitOfWorkFactory, recorded: Recorded) -> Verdict:
    violations: list[str] = []
    figures: dict[str, object] = {"recorded": recorded.count}
    await _exactly_once(conn, recorded, violations, figures)
    await _statuses(conn, recorded, violations, figures)
    await _recording_order(uow, recorded, violations)
    figures["persisted_out_of_order"] = await _persisted_out_of_order(conn)
    await _audit(conn, violations, figures)
    return Verdict(violations, figures)


async def _exactly_once(
    conn: asyncpg.Connection, recorded: Recorded, violations: list[str], figures: dict[str, object]
) -> None:
    rows = await conn.fetch("SELECT event_id FROM chat_history_messages")
    counts = Counter(row["event_id"] for row in rows)
    figures["history_rows"] = len(rows)
    duplicated = [event_id for event_id, n in counts.items() if n > 1]
    missing = recorded.event_ids - counts.keys()
    unknown = counts.keys() - recorded.event_ids
    if duplicated:
        violations.append(f"{len(duplicated)} messages in history more than once")
    if missing:
        violations.append(f"{len(missing)} recorded messages missing from history")
    if unknown:
        violations.append(f"{len(unknown)} history rows that nobody recorded")


async def _statuses(
    conn: asyncpg.Connection, recorded: Recorded, violations: list[str], figures: dict[str, object]
) -> None:
    rows = await conn.fetch("SELECT status, count(*) AS n FROM agent_outbox_messages GROUP BY 1")
    by_status = {row["status"]: row["n"] for row in rows}
    figures["outbox"] = by_status
    if by_status.get("dead"):
        violations.append(f"{by_status['dead']} messages are dead")
    if by_status != {"consumed": recorded.count}:
        violations.append(f"outbox is {by_status}, expected all {recorded.count} consumed")


async def _recording_order(
    uow: SqlUnitOfWorkFactory, recorded: Recorded, violations: list[str]
) -> None:
    """Read each conversation back through the application, as a user would."""
    wrong = 0
    for conversation, texts in recorded.texts.items():
        entries = await read_history(uow, conversation, limit=len(texts) + 10)
        if [entry.message for entry in entries] != texts:
            wrong += 1
    if wrong:
        violations.append(f"{wrong} conversations read back out of recording order or incomplete")


async def _persisted_out_of_order(conn: asyncpg.Connection) -> int:
    """Conversations whose rows were inserted in another order than recorded (allowed:
    a lost-and-swept message lands after its successors; reading sorts by recording)."""
    rows = await conn.fetch(
        "SELECT conversation_id, outbox_id FROM chat_history_messages ORDER BY id"
    )
    last: dict[str, int] = {}
    late: set[str] = set()
    for row in rows:
        if row["outbox_id"] < last.get(row["conversation_id"], 0):
            late.add(row["conversation_id"])
        last[row["conversation_id"]] = max(row["outbox_id"], last.get(row["conversation_id"], 0))
    return len(late)


async def _audit(
    conn: asyncpg.Connection, violations: list[str], figures: dict[str, object]
) -> None:
    """Every recorded status change is in the state table, and each row's changes chain."""
    rows = await conn.fetch(
        "SELECT outbox_id, old_status, new_status FROM chaos_status_audit ORDER BY id"
    )
    allowed = allowed_moves()
    moves: Counter[str] = Counter()
    illegal: Counter[str] = Counter()
    current: dict[int, str] = {}
    broken_chains = 0
    for row in rows:
        move = (row["old_status"], row["new_status"])
        name = f"{move[0] or 'insert'} -> {move[1]}"
        moves[name] += 1
        if move not in allowed:
            illegal[name] += 1
        if current.get(row["outbox_id"]) != row["old_status"]:
            broken_chains += 1
        current[row["outbox_id"]] = row["new_status"]
    figures["status_moves"] = dict(sorted(moves.items()))
    for name, count in illegal.items():
        violations.append(f"{count} status moves {name}, which the state table forbids")
    if broken_chains:
        violations.append(f"{broken_chains} audited moves do not start where the row was")
    figures["audited_moves"] = len(rows)
