"""Analyst docs and commands: the tables page is generated from the database's comments and the
committed page equals it; every column is described; `flywheel sql` is read-only; `status`."""

from __future__ import annotations

import json
from pathlib import Path

from assets.cli import main as cli
from flywheel.analyst import tables_page

PAGE = Path(__file__).resolve().parents[1] / "docs" / "analyst-tables.md"


def test_the_committed_tables_page_is_what_the_database_says(sample_with_changes):
    settings, _, _ = sample_with_changes
    page = tables_page(settings)
    assert PAGE.read_text() == page + "\n", "run: flywheel docs tables > docs/analyst-tables.md"
    for schema in ("ingest", "outcomes", "failures", "signals"):
        assert f"## `{schema}." in page
    undocumented = [line for line in page.splitlines() if line.startswith("| `") and line.endswith("|  |")]
    assert undocumented == []


def _env(monkeypatch, settings):
    for key, value in (("FLYWHEEL_LANDING", settings.landing), ("FLYWHEEL_STORE", settings.store),
                       ("FLYWHEEL_DB", settings.db), ("FLYWHEEL_PUBLISH", settings.publish)):
        monkeypatch.setenv(key, str(value))


def test_sql_prints_a_table_and_refuses_writes(sample_with_changes, monkeypatch, capsys):
    settings, truth, _ = sample_with_changes
    _env(monkeypatch, settings)
    assert cli(["sql", "SELECT count(*) AS n FROM ingest.events"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].strip() == "n" and int(out[2]) == truth["counts"]["events_valid"]
    assert cli(["sql", "CREATE TABLE x AS SELECT 1"]) == 2
    assert "read-only" in capsys.readouterr().err.lower()
    assert cli(["sql", "SELECT scenario FROM outcomes.daily_rates LIMIT 3", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_status_reports_alerts_and_the_last_run(sample_with_changes, monkeypatch, capsys):
    settings, truth, _ = sample_with_changes
    _env(monkeypatch, settings)
    assert cli(["status", "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["last_event_day"] == truth["end"]
    assert state["last_run"]["data_day"] == truth["end"]
    assert truth["regression"]["scenario"] in {a["scenario"] for a in state["open_alerts"]}
