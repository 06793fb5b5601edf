"""The short chaos run: the same harness as `make chaos`, with fewer messages and faults."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.plan import plan_for
from chaos.report import render
from chaos.run import run_chaos
from tests.integration.databases import TEST_DATABASE

pytestmark = pytest.mark.integration


async def test_a_short_chaos_run_loses_duplicates_and_reorders_nothing(tmp_path: Path) -> None:
    """Under relay and consumer SIGKILLs, a broker pause and restart, and dropped database
    connections, every message is in history once, in order, none dead, no status moved
    backward, and no process exited on its own."""
    plan = plan_for(quick=True, seed=7)
    outcome = await run_chaos(plan, tmp_path, database_name=f"{TEST_DATABASE}_chaos")
    report = render(outcome)
    assert outcome.passed, report
    kinds = [fault.kind for fault in outcome.faults]
    assert kinds.count("restart broker") == 1, report
    assert kinds.count("pause broker") == plan.broker_pauses, report
    assert len(kinds) == plan.relay_kills + plan.consumer_kills + plan.db_terminations + 2
    assert outcome.verdict.figures["history_rows"] == plan.messages
