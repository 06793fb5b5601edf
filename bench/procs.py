"""Spawn the relays and consumers under test (ours and the baseline), read their peak RSS,
and stop them with SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench.settings import KAFKA_TUNING, LOGS, ROOT, dsn, sqlalchemy_url

IMPLS = ("ours", "baseline")
MINIMAL = "minimal"
"""The minimal loop: the baseline relay without the producer's linger (drain only)."""
ONCE = "ours-once"
"""Our relay run as `chat-outbox relay --once`: it exits once nothing is due."""
ONE_LANE = "ours-1-lane"
"""Our relay with one claim loop (CHAT_OUTBOX_RELAY_LANES=1), to check lanes never slow it."""
OURS = ("ours", ONCE, ONE_LANE)
BIN = Path(sys.executable).parent


@dataclass
class Proc:
    name: str
    process: asyncio.subprocess.Process
    log: Path
    _log_file: IO[bytes] = field(repr=False)
    exits: bool = False
    """Expected to exit by itself (relay --once): a clean exit is not a failure."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def peak_rss_mib(self) -> float | None:
        """VmHWM from /proc: the peak resident set size so far."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None

    def cpu_seconds(self) -> float | None:
        """User + system CPU time so far, from /proc/<pid>/stat."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def check_alive(self) -> None:
        code = self.process.returncode
        if code is not None and not (self.exits and code == 0):
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{tail}")


@dataclass(frozen=True)
class Target:
    """Where a run's processes point: broker, topic, consumer group."""

    bootstrap: str
    topic: str
    group: str
    label: str


def our_env(
    target: Target, log_level: str | None = None, lanes: str | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_OUTBOX_")}
    env.update(
        {
            "CHAT_OUTBOX_DATABASE_URL": sqlalchemy_url(),
            "CHAT_OUTBOX_KAFKA_BOOTSTRAP_SERVERS": target.bootstrap,
            "CHAT_OUTBOX_TOPIC": target.topic,
            "CHAT_OUTBOX_CONSUMER_GROUP": target.group,
            "CHAT_OUTBOX_KAFKA_CREATE_TOPICS": "false",
            "CHAT_OUTBOX_LOG_LEVEL": log_level or os.environ.get("BENCH_LOG_LEVEL", "warning"),
            "CHAT_OUTBOX_LOG_FORMAT": "json",
            "CHAT_OUTBOX_RELAY_POLL_INTERVAL": "0.05",
            "CHAT_OUTBOX_RELAY_LANES": lanes or os.environ.get("BENCH_LANES", "auto"),
            "CHAT_OUTBOX_CONSUMER_WRITES": os.environ.get("BENCH_WRITES", "auto"),
        }
    )
    env.update({f"CHAT_OUTBOX_KAFKA_{k.upper()}": str(v) for k, v in KAFKA_TUNING.items()})
    return env


def command(impl: str, role: str, target: Target, listen: bool = False) -> list[str]:
    if impl in OURS:
        once = ["--once"] if impl == ONCE else []
        return [str(BIN / "chat-outbox"), *(["relay", *once] if role == "relay" else ["consume"])]
    module = "bench.baseline_relay" if role == "relay" else "bench.baseline_consumer"
    argv = [sys.executable, "-m", module, "--dsn", dsn(), "--bootstrap", target.bootstrap]
    argv += ["--topic", target.topic, "--group", target.group]
    if impl == MINIMAL:
        argv += ["--linger-ms", "0"]
    return [*argv, "--listen"] if listen else argv


async def spawn(
    impl: str,
    role: str,
    target: Target,
    index: int = 0,
    listen: bool = False,
    log_level: str | None = None,
) -> Proc:
    name = f"{target.label}-{impl}-{role}{index}"
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{name}.log"
    log_file = log.open("wb")
    process = await asyncio.create_subprocess_exec(
        *command(impl, role, target, listen),
        cwd=ROOT,
        env=our_env(target, log_level, "1" if impl == ONE_LANE else None),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log_file,
        stderr=asyncio.subprocess.STDOUT,
    )
    return Proc(name, process, log, log_file, exits=impl == ONCE)


async def stop(procs: list[Proc], grace: float = 15.0) -> None:
    """SIGTERM all, wait for each, SIGKILL what outlives the grace period."""
    for proc in procs:
        if proc.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.process.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            await asyncio.wait_for(proc.process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.process.kill()
            await proc.process.wait()
        proc._log_file.close()


def usage(procs: list[Proc], roles: tuple[str, ...]) -> dict[str, dict[str, float | None]]:
    """Per role: peak RSS (the largest process's, MiB) and CPU seconds (all processes')."""
    out: dict[str, dict[str, float | None]] = {}
    for role in sorted(set(roles)):
        mine = [p for p, r in zip(procs, roles, strict=True) if r == role]
        rss = [v for v in (p.peak_rss_mib() for p in mine) if v is not None]
        cpu = [v for v in (p.cpu_seconds() for p in mine) if v is not None]
        out[role] = {"peak_rss_mib": max(rss, default=None), "cpu_s": sum(cpu) if cpu else None}
    return out


def machine_cpu() -> tuple[float, float]:
    """(busy, all) CPU seconds of every core together since boot, from /proc/stat: what the
    whole machine (the database, the broker, every process) spent, and could have spent."""
    line = Path("/proc/stat").read_text().split("\n", 1)[0]
    ticks = [int(field) for field in line.split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    hertz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hertz, sum(ticks) / hertz
