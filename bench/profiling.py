"""Sample a relay with py-spy during a drain (ours and the baseline) and summarise the stacks:
own time (the leaf frame) and cumulative time (anywhere in the stack) per function."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import db, kafka
from bench.data import make_rows
from bench.procs import BIN, IMPLS, Proc
from bench.runs import Bench, Spec, measure
from bench.settings import RESULTS
from bench.watch import DRAIN
from chat_outbox.domain import OutboxStatus

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
IDLE = "select (selectors.py)"
LAYERS = frozenset(
    {"sqlalchemy", "asyncpg", "aiokafka", "kafka", "structlog", "dependency_injector", "json",
     "attrs", "alembic", "domain", "application", "adapters", "entrypoints", "bench", "uuid"}
)  # fmt: skip
PLUMBING = frozenset(
    {"asyncio", "<frozen runpy>", "<frozen importlib._bootstrap>", "bench", "selectors.py", "?",
     "<frozen importlib._bootstrap_external>"}
)  # fmt: skip


def py_spy() -> str | None:
    found = BIN / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


async def profile(bench: Bench) -> dict[str, Any]:
    tool = py_spy()
    if tool is None:
        print("  profile  skipped: py-spy is not installed (.venv/bin/pip install py-spy)")
        return {}
    count = bench.plan.drain_rows
    rows = make_rows(count, bench.plan.conversations, first_id=db.FIRST_ID)
    spec = Spec("profile", rows, OutboxStatus.PENDING, ("relay",), DRAIN)
    summaries = {}
    for impl in IMPLS:
        out = RESULTS / f"profile-{impl}-relay.txt"
        topic = await kafka.new_topic(bench.broker, "profile")
        result = await measure(bench, spec, impl, topic, attach=_attacher(tool, out))
        await kafka.drop_topic(bench.broker, topic)
        summaries[impl] = {"rate": result["rate"], "raw": str(out), **summarise(out)}
        print(f"  profile  {impl:<8} {result['rate']:,.0f} msg/s under py-spy; stacks in {out}")
    return summaries


def _attacher(tool: str, out: Path) -> Callable[[Proc], Awaitable[Callable[[], Awaitable[None]]]]:
    async def attach(proc: Proc) -> Callable[[], Awaitable[None]]:
        argv = [tool, "record", "--pid", str(proc.pid), "--rate", "200", "--idle"]
        argv += ["--nonblocking", "--format", "raw", "--output", str(out)]
        spy = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )

        async def detach() -> None:
            with contextlib.suppress(ProcessLookupError):
                spy.send_signal(signal.SIGINT)
            await asyncio.wait_for(spy.wait(), 30)

        return detach

    return attach


def _split(frame: str) -> tuple[str, str]:
    """('Class.function (file.py)', 'top-level package or module of its file')."""
    match = FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), "?"
    path = match["file"]
    return f"{match['function']} ({Path(path).name})", path.split("/", 1)[0]


def _layer(frames: list[tuple[str, str]]) -> str:
    """The library or project layer doing the work: the known package nearest the leaf."""
    if any(package.startswith("<frozen importlib") for _, package in frames):
        return "imports (start-up)"
    for _, package in reversed(frames):
        if package in LAYERS:
            return package
    return "asyncio / stdlib"


def summarise(raw: Path, top: int = 12) -> dict[str, Any]:
    """Shares of the busy (non-idle) samples; idle is the event loop waiting in epoll."""
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    total = busy = 0
    for line in raw.read_text().splitlines() if raw.exists() else []:
        stack, _, number = line.rpartition(" ")
        if not number.isdigit() or not stack:
            continue
        samples = int(number)
        frames = [_split(f) for f in stack.split(";") if f]
        total += samples
        if frames[-1][0].endswith(IDLE):
            continue
        busy += samples
        own[frames[-1][0]] += samples
        layers[_layer(frames)] += samples
        for name in {name for name, package in frames if package not in PLUMBING}:
            cumulative[name] += samples

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(n, round(100 * c / max(busy, 1), 1)) for n, c in counter.most_common(top)]

    return {
        "samples": total,
        "busy_samples": busy,
        "idle_pct": round(100 * (total - busy) / max(total, 1), 1),
        "layers_pct": shares(layers),
        "own_pct": shares(own),
        "cumulative_pct": shares(cumulative),
    }
