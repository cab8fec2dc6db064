"""A day with no rows is written with its table's schema: after the nightly job runs over a range
with empty days in it (no events at all for three days, so even the decision windows are empty),
every Parquet file in the store has columns, and every analyst view answers a query."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pyarrow.parquet as pq
import pytest

from conftest import write_jsonl
from flywheel.store import write_parquet_atomic

START = date(2026, 3, 1)
POLICY = """
version: "empty-1"
windows: {current_days: 3, baseline_days: 3}
promotion: {min_reviewed: 30, accept_target: 0.80, severe_max: 0.10, consecutive_days: 3, gate_min_coverage: 0.2}
demotion: {accept_floor: 0.60, severe_limit: 0.20, min_reviewed: 10, automatic: true}
drift: {min_sample: 20}
"""


def _day(day: date, n: int = 30) -> tuple[list, list]:
    events = [{"event_id": f"e-{day}-{i}", "occurred_at": f"{day}T10:{i:02d}:00Z", "scenario": "s", "model": "m",
               "prompt_version": "v1", "autonomy_level": "assist", "status": "ok", "confidence": 0.9,
               "output_text": "draft", "input_text": "hello there", "tool_calls": [{"name": "lookup", "status": "ok"}]}
              for i in range(n)]
    interventions = [{"intervention_id": f"i-{e['event_id']}", "event_id": e["event_id"], "occurred_at": f"{day}T20:00:00Z",
                      "action": "accepted" if i % 5 else "rejected", "review_seconds": 20}
                     for i, e in enumerate(events)]
    return events, interventions


def test_every_table_keeps_its_schema_on_empty_days(settings, monkeypatch):
    from dataclasses import replace

    from assets.runner import run_days

    s = replace(settings, policy=settings.landing.parent / "policy.yaml", publish=settings.landing.parent / "publish")
    s.policy.write_text(POLICY)
    monkeypatch.setenv("FLYWHEEL_POLICY", str(s.policy))
    monkeypatch.setenv("FLYWHEEL_PUBLISH", str(s.publish))
    for offset in (0, 5):  # days 2, 3 and 4 have nothing at all
        day = START + timedelta(days=offset)
        events, interventions = _day(day)
        write_jsonl(s.landing / "events" / f"{day}.jsonl", events)
        write_jsonl(s.landing / "interventions" / f"{day}.jsonl", interventions)
    run_days(s, START, START + timedelta(days=5), quiet=True, progress=False)

    files = sorted(s.store.rglob("*.parquet"))
    assert any(f"event_date={START + timedelta(days=3)}" in str(p) for p in files)
    no_columns = [str(p.relative_to(s.store)) for p in files if len(pq.read_schema(p)) == 0]
    assert no_columns == []

    con = duckdb.connect(str(s.db), read_only=True)
    con.execute("SET VARIABLE flywheel_store = ?", [str(s.store)])
    try:
        views = con.sql("SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        assert len(views) >= 20
        for schema, view in views:
            con.sql(f'SELECT count(*) FROM "{schema}"."{view}"').fetchall()  # raises if any file is unreadable
        empty_day = START + timedelta(days=3)
        assert con.sql("SELECT count(*) FROM signals.gate_evaluations WHERE day = ?", params=[empty_day]).fetchall() == [(0,)]
        assert con.sql("SELECT count(*) FROM signals.gate_evaluations").fetchall()[0][0] >= 2
    finally:
        con.close()


def test_a_table_without_columns_is_refused(tmp_path):
    import pyarrow as pa

    with pytest.raises(ValueError, match="no columns"):
        write_parquet_atomic(pa.table({}), tmp_path / "t" / "data.parquet")
    assert not (tmp_path / "t" / "data.parquet").exists()
