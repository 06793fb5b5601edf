"""Print a run: the faults injected, what the processes did, and the verdict."""

from __future__ import annotations

from collections import defaultdict

from chaos.run import Outcome


def render(outcome: Outcome) -> str:
    plan = outcome.plan
    lines = [
        f"chaos run: seed {plan.seed}, {plan.messages} messages over {plan.conversations} "
        f"conversations, {plan.relays} relays + {plan.consumers} consumers",
        "",
        f"{'fault':<26}{'count':>6}  details",
    ]
    by_kind: defaultdict[str, list[str]] = defaultdict(list)
    for fault in outcome.faults:
        by_kind[fault.kind].append(f"{fault.target}@{fault.at_s:.0f}s {fault.detail}".strip())
    for kind in sorted(by_kind):
        shown = "; ".join(by_kind[kind][:4]) + ("; ..." if len(by_kind[kind]) > 4 else "")
        lines.append(f"{kind:<26}{len(by_kind[kind]):>6}  {shown}")
    lines += ["", "outcome (from the database)"]
    figures = dict(outcome.verdict.figures)
    figures.update({name: round(value, 1) for name, value in outcome.timings.items()})
    crashes = sum(len(found) for found in outcome.crashes.values())
    figures["unexpected_process_exits"] = crashes
    lines += [f"  {name:<40}{value}" for name, value in figures.items()]
    lines += ["", "from the processes' logs (a SIGKILL loses the line of the batch in flight)"]
    lines += [f"  {name:<40}{value}" for name, value in outcome.process_figures.items()]
    for member, found in outcome.crashes.items():
        for crash in found:
            lines.append(f"  CRASH {member}: {crash[-600:]}")
    lines.append("")
    if outcome.passed:
        lines.append("PASS: every message in history exactly once, none dead, recording "
                     "order kept, no status moved backward")  # fmt: skip
    else:
        lines += [f"FAIL: {violation}" for violation in outcome.verdict.violations]
        if crashes:
            lines.append(f"FAIL: {crashes} processes exited on their own")
    return "\n".join(lines)
