"""The results table (scenario | chat-outbox | baseline | ratio | target | met?) and its JSON."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.settings import RESULTS, Plan

Runs = list[dict[str, Any]]
Pick = Callable[[dict[str, Any]], float | None]
RSS_LIMIT_MIB = 120.0


@dataclass(frozen=True)
class Line:
    scenario: str
    ours: float | None
    baseline: float | None
    target: str = "-"
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.baseline:
            return None
        return self.ours / self.baseline


def _median(runs: Runs, impl: str, pick: Pick) -> float | None:
    values = [v for run in runs if run["impl"] == impl and (v := pick(run)) is not None]
    return statistics.median(values) if values else None


def _key(name: str) -> Pick:
    return lambda run: run.get(name)


def _rss(role: str) -> Pick:
    return lambda run: run.get("peak_rss_mib", {}).get(role)


def _ratio_line(label: str, runs: Runs, pick: Pick, bound: float, at_least: bool) -> Line:
    line = Line(label, _median(runs, "ours", pick), _median(runs, "baseline", pick))
    ratio = line.ratio
    sign = ">=" if at_least else "<="
    met = None if ratio is None else (ratio >= bound if at_least else ratio <= bound)
    return Line(line.scenario, line.ours, line.baseline, f"{sign} {bound:.2f}x", met)


def _info(label: str, runs: Runs, pick: Pick) -> Line:
    return Line(label, _median(runs, "ours", pick), _median(runs, "baseline", pick))


def _rss_line(label: str, runs: Runs, role: str) -> Line:
    line = _info(label, runs, _rss(role))
    met = None if line.ours is None else line.ours < RSS_LIMIT_MIB
    return Line(label, line.ours, line.baseline, f"< {RSS_LIMIT_MIB:.0f} MiB", met)


def lines(results: dict[str, Any], plan: Plan) -> list[Line]:
    out: list[Line] = []
    for relays in (1, 2):
        runs = results.get(f"drain{relays}")
        if runs:
            label = f"drain {plan.drain_rows // 1000}k, {relays} relay{'s' * (relays > 1)} (msg/s)"
            out.append(_ratio_line(label, runs, _key("rate"), 0.9, True))
            out.append(_info("  same, after the first publish (msg/s)", runs, _key("steady_rate")))
            out.append(_info("  start-up to the first publish (s)", runs, _key("startup_s")))
            out.append(_rss_line(f"  peak RSS, relay, drain {relays} (MiB)", runs, "relay"))
    if runs := results.get("e2e"):
        out.append(_info(f"end-to-end {plan.e2e_rows // 1000}k, start to all consumed (msg/s)",
                         runs, _key("rate")))  # fmt: skip
        out.append(_info("  same, after the first consumed row (msg/s)", runs, _key("steady_rate")))
        out.append(_rss_line("  peak RSS, relay, e2e (MiB)", runs, "relay"))
        out.append(_rss_line("  peak RSS, consumer, e2e (MiB)", runs, "consumer"))
    if runs := results.get("persist"):
        label = f"consumer persist {plan.persist_rows // 1000}k, after the first row (msg/s)"
        out.append(_ratio_line(label, runs, _key("steady_rate"), 0.9, True))
        out.append(_info("  same, from start incl. group join (msg/s)", runs, _key("rate")))
        out.append(_rss_line("  peak RSS, consumer, persist (MiB)", runs, "consumer"))
    if runs := results.get("latency"):
        rate = runs[0]["rate"]
        out.append(_ratio_line(f"latency at {rate}/s, commit->consumed p50 (ms)", runs,
                               _key("p50_ms"), 1.0, False))  # fmt: skip
        out.append(_info("  p95 (ms)", runs, _key("p95_ms")))
        out.append(_ratio_line("  p99 (ms)", runs, _key("p99_ms"), 1.0, False))
        out.append(_info("  recorder rate achieved (rows/s)", runs, _key("recorded_rate")))
    return out


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def table(rows: list[Line]) -> str:
    header = ("scenario", "chat-outbox", "baseline", "ratio", "target", "met?")
    body = [
        (
            row.scenario, _cell(row.ours), _cell(row.baseline),
            "-" if row.ratio is None else f"{row.ratio:.2f}x", row.target,
            {True: "yes", False: "NO", None: "-"}[row.met],
        )
        for row in rows
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]

    def fmt(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return " | ".join([first, *rest])

    return "\n".join([fmt(header), "-+-".join("-" * w for w in widths), *map(fmt, body)])


def write_json(results: dict[str, Any], plan: Plan, rows: list[Line]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "latest.json"
    document = {
        "generated_at": datetime.now(UTC).isoformat(),
        "plan": asdict(plan),
        "table": [{**asdict(row), "ratio": row.ratio} for row in rows],
        "results": results,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path
