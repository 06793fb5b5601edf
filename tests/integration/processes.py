"""`python -m chat_outbox ...` children for the process tests, each logging to a file."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import attrs
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.kafka_helpers import all_consumed

EXIT_WITHIN_S = 15.0
LOG_TAIL_BYTES = 3000


@attrs.define
class Spawned:
    """A `python -m chat_outbox ...` child whose stdout and stderr go to a log file."""

    name: str
    process: asyncio.subprocess.Process
    log: Path
    stopping: bool = False

    def tail(self) -> str:
        return self.log.read_bytes()[-LOG_TAIL_BYTES:].decode(errors="replace")

    async def exit_code(self, within: float = EXIT_WITHIN_S) -> int:
        """Its exit code; fail with its log if it is still running after `within` seconds."""
        try:
            return await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            pytest.fail(f"`{self.name}` still ran after {within:.0f} s; log:\n{self.tail()}")

    def stop(self) -> None:
        self.stopping = True
        self.process.send_signal(signal.SIGTERM)


@attrs.define
class Launcher:
    env: dict[str, str]
    log_dir: Path
    started: list[Spawned] = attrs.Factory(list)

    async def spawn(self, *command: str) -> Spawned:
        log = self.log_dir / f"{len(self.started)}-{'-'.join(command)}.log"
        with log.open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "chat_outbox",
                *command,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=output,
            )
        spawned = Spawned(" ".join(command), process, log)
        self.started.append(spawned)
        return spawned

    async def consumed_while_running(self, engine: AsyncEngine, expected: int) -> bool:
        """Whether `expected` rows are consumed; fails with the log of any child that died."""
        for spawned in self.started:
            code = spawned.process.returncode
            if code is not None and not spawned.stopping:
                pytest.fail(f"`{spawned.name}` exited with {code}; log:\n{spawned.tail()}")
        return await all_consumed(engine, expected)

    async def kill_leftovers(self) -> None:
        for spawned in self.started:
            if spawned.process.returncode is None:
                spawned.process.kill()
                await spawned.process.wait()
