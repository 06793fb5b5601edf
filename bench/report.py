"""The results table (scenario | value | compared with | ratio | target | met?), the latency
table, and their JSON."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.ceiling import IMPL as CEILING
from bench.fresh import LIMIT_MS
from bench.latency import PASSES_MS, REBALANCE_RATE
from bench.procs import MINIMAL, ONCE, ONE_LANE
from bench.settings import RESULTS, Plan

Runs = list[dict[str, Any]]
Pick = Callable[[dict[str, Any]], float | None]
RSS_LIMIT_MIB = 120.0
# Issue 21's targets for the drain.
VS_BASELINE = 0.9
VS_MINIMAL_1 = 1.1
VS_MINIMAL_2 = 0.9
SCALE_OUT = 1.5
OF_CEILING = 0.45


@dataclass(frozen=True)
class Line:
    scenario: str
    value: float | None
    reference: float | None
    """What the value is compared with (the label says which), or None."""
    target: str = "-"
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.reference:
            return None
        return self.value / self.reference


def _median(runs: Runs | None, impl: str, pick: Pick) -> float | None:
    values = [v for run in runs or [] if run["impl"] == impl and (v := pick(run)) is not None]
    return statistics.median(values) if values else None


def _key(name: str) -> Pick:
    return lambda run: run.get(name)


def _rss(role: str) -> Pick:
    return lambda run: run.get("peak_rss_mib", {}).get(role)


def _claim(name: str) -> Pick:
    return lambda run: run.get("claim_ms", {}).get(name)


def _versus(
    label: str, value: float | None, reference: float | None, bound: float, at_least: bool = True
) -> Line:
    line = Line(label, value, reference)
    ratio = line.ratio
    met = None if ratio is None else (ratio >= bound if at_least else ratio <= bound)
    return Line(label, value, reference, f"{'>=' if at_least else '<='} {bound:.2f}x", met)


def _info(label: str, runs: Runs, pick: Pick, reference: str = "baseline") -> Line:
    return Line(label, _median(runs, "ours", pick), _median(runs, reference, pick))


def _rss_line(label: str, runs: Runs, role: str) -> Line:
    line = _info(label, runs, _rss(role))
    met = None if line.value is None else line.value < RSS_LIMIT_MIB
    return Line(label, line.value, line.reference, f"< {RSS_LIMIT_MIB:.0f} MiB", met)


def _bound(label: str, value: float | None, limit: float) -> Line:
    met = None if value is None else value <= limit
    return Line(label, value, None, f"<= {limit:.0f} ms", met)


def _drain(results: dict[str, Any], plan: Plan) -> list[Line]:
    out: list[Line] = []
    size = f"drain {plan.drain_rows // 1000}k"
    one, two = results.get("drain1"), results.get("drain2")
    rate = _key("rate")
    if one:
        ours = _median(one, "ours", rate)
        minimal = _median(one, MINIMAL, rate)
        out.append(_versus(f"{size}, 1 relay vs baseline (msg/s)", ours,
                           _median(one, "baseline", rate), VS_BASELINE))  # fmt: skip
        out.append(_versus("  1 relay vs the minimal loop", ours, minimal, VS_MINIMAL_1))
        out.append(_versus("  relay --once vs the minimal loop", _median(one, ONCE, rate),
                           minimal, VS_MINIMAL_1))  # fmt: skip
        out.append(_versus("  lanes (auto) vs one lane", ours, _median(one, ONE_LANE, rate),
                           1.0))  # fmt: skip
        out.append(_info("  after the first publish vs baseline", one, _key("steady_rate")))
        out.append(_info("  after the first publish vs the minimal loop", one,
                         _key("steady_rate"), MINIMAL))  # fmt: skip
        out.append(_info("  start-up to the first publish (s)", one, _key("startup_s")))
        out.extend(_machine(one))
        out.append(_rss_line("  peak RSS, relay, drain 1 (MiB)", one, "relay"))
    if two:
        ours2 = _median(two, "ours", rate)
        out.append(_versus(f"{size}, 2 relays vs baseline (msg/s)", ours2,
                           _median(two, "baseline", rate), VS_BASELINE))  # fmt: skip
        out.append(_versus("  2 relays vs the minimal loop x2", ours2,
                           _median(two, MINIMAL, rate), VS_MINIMAL_2))  # fmt: skip
        out.append(_info("  after the first publish vs baseline", two, _key("steady_rate")))
        out.append(_info("  after the first publish vs the minimal loop x2", two,
                         _key("steady_rate"), MINIMAL))  # fmt: skip
        out.extend(_machine(two))
        out.append(_rss_line("  peak RSS, relay, drain 2 (MiB)", two, "relay"))
    if one and two:
        out.append(_versus("scale-out: our 2 relays vs our 1 (msg/s)", _median(two, "ours", rate),
                           _median(one, "ours", rate), SCALE_OUT))  # fmt: skip
        for impl, name in ((MINIMAL, "the minimal loop"), ("baseline", "the baseline")):
            out.append(Line(f"  same for {name}", _median(two, impl, rate),
                            _median(one, impl, rate)))  # fmt: skip
    if runs := results.get("ceiling"):
        top = _median(runs, CEILING, rate)
        out.append(Line("raw produce of the same records, the ceiling (msg/s)", top, None))
        if one:
            out.append(_versus("  1 relay as a fraction of it", _median(one, "ours", rate), top,
                               OF_CEILING))  # fmt: skip
            for impl, name in ((MINIMAL, "the minimal loop"), ("baseline", "the baseline")):
                out.append(Line(f"  {name} as a fraction of it", _median(one, impl, rate), top))
    return out


def _machine(runs: Runs) -> list[Line]:
    """How busy the cores were, and CPU per message (the whole machine's, and our processes'
    or the minimal loop's), against the minimal loop: a drain with the cores busy cannot
    gain from more relays. After the first publish, start-up's imports are excluded."""
    pick = [
        ("  machine CPU busy, of all cores (%)", lambda run: _percent(run.get("machine_busy"))),
        ("  machine CPU per message (ms)", _key("machine_cpu_ms_per_msg")),
        ("  same, after the first publish", _key("steady_machine_cpu_ms_per_msg")),
        ("  relay processes' CPU per message after it", _key("steady_cpu_ms_per_msg")),
    ]
    return [_info(label, runs, value, MINIMAL) for label, value in pick]


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else 100 * fraction


def _fresh(runs: Runs) -> list[Line]:
    worst = max((v for run in runs if (v := _claim("max_ms")(run)) is not None), default=None)
    return [
        _bound("fresh analysed-empty table: slowest claim (ms)", worst, LIMIT_MS),
        Line(f"  claims over {LIMIT_MS:.0f} ms, all runs", _total(runs, "claim_ms"), None),
        Line(
            "  of them during the half-way ANALYZE", _total(runs, "claim_ms_during_analyze"), None
        ),
        Line("  claim p99, median of runs (ms)", _median(runs, "ours", _claim("p99_ms")), None),
        Line("  claim p50, median of runs (ms)", _median(runs, "ours", _claim("p50_ms")), None),
        Line("  load + drain (msg/s)", _median(runs, "ours", _key("rate")), None),
    ]


def _total(runs: Runs, field: str) -> float:
    return float(sum(run.get(field, {}).get("over_50_ms", 0) for run in runs))


def _latency(found: dict[str, Any]) -> list[Line]:
    out: list[Line] = []
    at = found["table"].get("1000", {})
    ours, base = at.get("ours", {}), at.get("baseline", {})
    if ours or base:
        for name, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
            out.append(_versus(f"latency at 1000/s vs baseline, {label} (ms)", ours.get(name),
                               base.get(name), 1.0, at_least=False))  # fmt: skip
        out.append(Line("  p99.9 (ms)", ours.get("p999_ms"), base.get("p999_ms")))
    out.append(Line(f"  lowest rate where our p99 passes {PASSES_MS:.0f} ms (msg/s)",
                    passes(found), None))  # fmt: skip
    return out


def _rebalance(found: dict[str, Any]) -> list[Line]:
    at = found["table"].get(str(REBALANCE_RATE), {})
    ours, base = at.get("ours", {}), at.get("baseline", {})
    label = f"latency at {REBALANCE_RATE}/s, a consumer joining, vs baseline"
    return [
        Line(f"{label}, {name} (ms)" if name == "p99" else f"  {name} (ms)", ours.get(key),
             base.get(key))
        for key, name in (("p99_ms", "p99"), ("p999_ms", "p99.9"), ("max_ms", "max"))
    ]  # fmt: skip


def passes(found: dict[str, Any]) -> float | None:
    """The lowest rate whose pooled p99 (ours) is over PASSES_MS, or one it was not sustained
    at; None when neither happened at any rate tried."""
    given_up = {run["rate"] for run in found["given_up"] if run["impl"] == "ours"}
    for rate in sorted({int(r) for r in found["table"]} | given_up):
        ours = found["table"].get(str(rate), {}).get("ours")
        if rate in given_up or ours is None or ours["p99_ms"] > PASSES_MS:
            return rate
    return None


def _growth(runs: Runs) -> list[Line]:
    out = []
    for history in sorted({run["history"] for run in runs}):
        mine = [run for run in runs if run["history"] == history]
        out.append(Line(f"growth, {history:,} older rows: drain (msg/s)",
                        _median(mine, "ours", _key("rate")), None))  # fmt: skip
        out.append(Line("  claim p50 (ms)", _median(mine, "ours", _claim("p50_ms")), None))
        out.append(Line("  claim p99 (ms)", _median(mine, "ours", _claim("p99_ms")), None))
        out.append(_rss_line("  peak RSS, relay (MiB)", mine, "relay"))
    return out


def lines(results: dict[str, Any], plan: Plan) -> list[Line]:
    out = _drain(results, plan)
    if runs := results.get("fresh"):
        out += _fresh(runs)
    if runs := results.get("e2e"):
        out.append(_info(f"end-to-end {plan.e2e_rows // 1000}k, start to all consumed (msg/s)",
                         runs, _key("rate")))  # fmt: skip
        out.append(_info("  same, after the first consumed row (msg/s)", runs, _key("steady_rate")))
        out.append(_rss_line("  peak RSS, relay, e2e (MiB)", runs, "relay"))
        out.append(_rss_line("  peak RSS, consumer, e2e (MiB)", runs, "consumer"))
    if runs := results.get("persist"):
        label = f"consumer persist {plan.persist_rows // 1000}k, after the first row (msg/s)"
        steady = _key("steady_rate")
        out.append(_versus(label, _median(runs, "ours", steady),
                           _median(runs, "baseline", steady), VS_BASELINE))  # fmt: skip
        out.append(_info("  same, from start incl. group join (msg/s)", runs, _key("rate")))
        out.append(_rss_line("  peak RSS, consumer, persist (MiB)", runs, "consumer"))
    if found := results.get("latency"):
        out += _latency(found)
    if found := results.get("rebalance"):
        out += _rebalance(found)
    if runs := results.get("growth"):
        out += _growth(runs)
    return out


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) >= 1 or value == 0 else f"{value:.4f}"


def _grid(header: tuple[str, ...], body: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]

    def fmt(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return " | ".join([first, *rest])

    return "\n".join([fmt(header), "-+-".join("-" * w for w in widths), *map(fmt, body)])


def table(rows: list[Line]) -> str:
    header = ("scenario", "value", "compared with", "ratio", "target", "met?")
    body = [
        (
            row.scenario, _cell(row.value), _cell(row.reference),
            "-" if row.ratio is None else f"{row.ratio:.2f}x", row.target,
            {True: "yes", False: "NO", None: "-"}[row.met],
        )
        for row in rows
    ]  # fmt: skip
    return _grid(header, body)


def latency_table(found: dict[str, Any], passing: bool = True) -> str:
    """Per rate and implementation: commit -> consumed percentiles of the pooled runs."""
    header = ("latency (ms), pooled", "rows", "p50", "p95", "p99", "p99.9", "max")
    body = []
    for rate_key, impls in sorted(found["table"].items(), key=lambda item: int(item[0])):
        for impl, cuts in impls.items():
            body.append((f"{int(rate_key):,}/s {impl}", f"{cuts['rows']:,}",
                         *(f"{cuts[k]:.1f}" for k in
                           ("p50_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms"))))  # fmt: skip
    given_up = Counter((run["rate"], run["impl"]) for run in found["given_up"])
    for (rate, impl), runs in sorted(given_up.items()):
        body.append((f"{rate:,}/s {impl}", f"not sustained x{runs}", *("-",) * 5))
    if not passing:
        return _grid(header, body)
    rate = passes(found)
    where = f"at {rate:,}/s" if rate else "at none of the rates tried"
    return (
        _grid(header, body) + f"\nOur p99 passes {PASSES_MS:.0f} ms (or the rate is not "
        f"sustained) {where}."
    )


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
