"""The example app's own schema, in its own metadata: chat-outbox's tables are not in it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """The app's declarative base; `Base.metadata.create_all` creates `agent_runs` only."""


class AgentRun(Base):
    """One prompt a user sent to the agent: the app's business row, written in the same
    transaction as the chat message's outbox row."""

    __tablename__ = "agent_runs"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String(128), index=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    prompt: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    """The chat message's event id (`Recorded.event_id`): which outbox row this run wrote."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    status: Mapped[str] = mapped_column(String(16), default="running")
    """running, then finished once the consumer has handled its agent_run.finished event."""
    answer: Mapped[str | None] = mapped_column(Text, default=None)
    tokens: Mapped[int | None] = mapped_column(Integer, default=None)
