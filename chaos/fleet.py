"""The relays and consumers under test: real `chat-outbox` processes, killed and restarted."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from pathlib import Path

import attrs

CHAT_OUTBOX = Path(sys.executable).parent / "chat-outbox"
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    # A harness that dies (even by SIGKILL) must not leave relays and consumers behind.
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@attrs.define
class Member:
    """One relay or consumer slot; `process` is its current incarnation."""

    name: str
    command: str
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    crashes: list[str] = attrs.Factory(list)
    """Exits nobody asked for, with the log tail: each one is a failure of the run."""


@attrs.define
class Fleet:
    env: dict[str, str]
    log_dir: Path
    members: list[Member] = attrs.Factory(list)

    @classmethod
    def of(cls, env: dict[str, str], log_dir: Path, relays: int, consumers: int) -> Fleet:
        members = [Member(f"relay{i}", "relay") for i in range(relays)]
        members += [Member(f"consumer{i}", "consume") for i in range(consumers)]
        return cls(env, log_dir, members)

    def role(self, command: str) -> list[Member]:
        return [member for member in self.members if member.command == command]

    def log_path(self, member: Member) -> Path:
        return self.log_dir / f"{member.name}.{member.starts}.log"

    async def start(self, member: Member) -> None:
        member.starts += 1
        with self.log_path(member).open("wb") as log:
            member.process = await asyncio.create_subprocess_exec(
                str(CHAT_OUTBOX),
                member.command,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=_die_with_parent,
            )

    async def start_all(self) -> None:
        for member in self.members:
            await self.start(member)

    async def kill(self, member: Member) -> None:
        """SIGKILL, no grace: whatever it had in flight is cut off."""
        process = member.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    def check(self, excluding: set[str] | frozenset[str] = frozenset()) -> None:
        """Note any member that exited on its own since the last look, and forget it;
        `excluding` names members the controller is killing and restarting right now."""
        for member in self.members:
            process = member.process
            if member.name in excluding:
                continue
            if process is not None and process.returncode is not None:
                tail = self.log_path(member).read_bytes()[-1500:].decode(errors="replace")
                member.crashes.append(f"exit {process.returncode}: {tail}")
                member.process = None

    async def revive(self, excluding: set[str] | frozenset[str] = frozenset()) -> int:
        """Start every member that is not running; how many were started."""
        self.check(excluding)
        started = 0
        for member in self.members:
            if member.name in excluding:
                continue
            if member.process is None or member.process.returncode is not None:
                await self.start(member)
                started += 1
        return started

    async def stop_all(self, grace: float = 20.0) -> None:
        """SIGTERM each (a graceful drain), SIGKILL what outlives the grace period."""
        for member in self.members:
            if member.process is not None and member.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    member.process.send_signal(signal.SIGTERM)
        for member in self.members:
            if member.process is None:
                continue
            try:
                await asyncio.wait_for(member.process.wait(), grace)
            except TimeoutError:
                await self.kill(member)

    def log_files(self, command: str) -> list[Path]:
        return sorted(self.log_dir.glob(f"{'relay' if command == 'relay' else 'consumer'}*.log"))


def process_env(
    database_url: str, bootstrap: str, topic: str, sweep_after_s: float
) -> dict[str, str]:
    """The environment every relay and consumer gets: the local broker's fast group timing,
    a short lease (killed relays give their rows back soon) and a short stale sweep."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_OUTBOX_")}
    env.update(
        {
            "CHAT_OUTBOX_DATABASE_URL": database_url,
            "CHAT_OUTBOX_BUS": "kafka",
            "CHAT_OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CHAT_OUTBOX_TOPIC": topic,
            "CHAT_OUTBOX_CONSUMER_GROUP": f"{topic}-history",
            "CHAT_OUTBOX_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "CHAT_OUTBOX_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "CHAT_OUTBOX_KAFKA_REBALANCE_TIMEOUT_MS": "2000",
            "CHAT_OUTBOX_KAFKA_FETCH_MAX_WAIT_MS": "10",
            "CHAT_OUTBOX_KAFKA_REQUEST_TIMEOUT_MS": "5000",
            "CHAT_OUTBOX_RELAY_LEASE_SECONDS": "20",
            "CHAT_OUTBOX_SWEEP_PUBLISHED_AFTER": str(sweep_after_s),
            "CHAT_OUTBOX_LOG_FORMAT": "json",
            "CHAT_OUTBOX_LOG_LEVEL": "info",
        }
    )
    return env
