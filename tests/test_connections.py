"""Every in-memory DuckDB connection the outcome and signal builders open (`flywheel.engine.connect`)
is closed when the builder returns, not left to the garbage collector with its spill folder."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from conftest import run_outcomes, run_pipeline, write_jsonl
from flywheel import engine
from flywheel.outcomes import calibration, invariants, rates
from flywheel.outcomes.invariants import count_mismatches
from flywheel.signals import autonomy, backtest, drift, recommend
from flywheel.signals.backtest import measure, replay
from flywheel.signals.decide import decide_day, policy_for

MODULES = (rates, calibration, invariants, autonomy, recommend, drift, backtest)
DAYS = [date(2026, 3, 1), date(2026, 3, 2)]


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, duckdb.DuckDBPyConnection]]:
    """(module, connection) of every engine connection the patched modules open."""
    out: list[tuple[str, duckdb.DuckDBPyConnection]] = []
    for module in MODULES:
        def recording(settings, _name=module.__name__):
            con = engine.connect(settings)
            out.append((_name, con))
            return con
        monkeypatch.setattr(module, "connect", recording)
    return out


def _is_open(con: duckdb.DuckDBPyConnection) -> bool:
    try:
        con.execute("SELECT 1")
    except duckdb.ConnectionException:
        return False
    return True


def test_builders_close_the_connections_they_open(settings, opened, tmp_path):
    events, interventions = [], []
    for i, day in enumerate(DAYS):
        for n in range(3):
            eid = f"e{i}{n}"
            events.append({"event_id": eid, "occurred_at": f"{day.isoformat()}T10:0{n}:00Z", "scenario": "s",
                           "model": "m", "autonomy_level": "autonomous", "status": "ok", "confidence": 0.5 + n / 10,
                           "tool_calls": [{"name": "search", "status": "ok"}]})
            interventions.append({"intervention_id": f"i{i}{n}", "event_id": eid,
                                  "occurred_at": f"{day.isoformat()}T11:00:00Z", "action": "accepted",
                                  "reviewer_id": "r"})
    write_jsonl(settings.landing / "events" / "e.jsonl", events)
    write_jsonl(settings.landing / "interventions" / "i.jsonl", interventions)
    run_pipeline(settings)
    run_outcomes(settings, DAYS)
    policy = policy_for(settings)
    for day in DAYS:
        decide_day(settings, day, "run-1", policy)
    assert count_mismatches(settings, DAYS) == []
    bt = replay(settings, policy, DAYS, tmp_path / "replay")
    assert measure(bt, policy, DAYS).totals["acting_alone"] == 3  # the second day's events acted alone
    # each module's builders ran and connected: the check below cannot pass for want of connections
    assert {name for name, _ in opened} == {m.__name__ for m in MODULES}
    assert [name for name, con in opened if _is_open(con)] == []
