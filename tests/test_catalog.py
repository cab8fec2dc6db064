"""The analysts' database is rebuilt only when a view's definition changes: new days of an
existing table show through the views' globs without a rebuild; a table's first file, or a
database file that is not the one last built, triggers one."""

from __future__ import annotations

from datetime import date

import duckdb

from conftest import query, run_pipeline, write_jsonl
from flywheel.catalog import build_catalog
from flywheel.outcomes.resolve import build_event_outcomes
from test_ingest import event, intervention


def _identity(path):
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def test_catalog_is_rebuilt_only_when_its_definitions_change(settings):
    write_jsonl(settings.landing / "events" / "a.jsonl", [event(1), event(2)])
    write_jsonl(settings.landing / "interventions" / "a.jsonl", [intervention(1, "e1")])
    run_pipeline(settings)
    first = _identity(settings.db)
    assert build_catalog(settings) == settings.db and _identity(settings.db) == first  # nothing changed

    # A new day of a table that already has files: no rebuild, and the analyst sees it at once.
    write_jsonl(settings.landing / "events" / "b.jsonl", [event(3, occurred_at="2026-03-02T08:00:00Z")])
    run_pipeline(settings)
    assert _identity(settings.db) == first
    assert query(settings, "SELECT count(*) FROM ingest.events")[0][0] == 3

    # The first file of a table that had none: the view's definition changes, so the database is rebuilt.
    assert query(settings, "SELECT count(*) FROM outcomes.event_outcomes")[0][0] == 0
    build_event_outcomes(settings, date(2026, 3, 1))
    build_catalog(settings)
    second = _identity(settings.db)
    assert second != first
    assert query(settings, "SELECT count(*) FROM outcomes.event_outcomes")[0][0] == 2

    # A database replaced behind the catalog's back (or damaged) is rebuilt, and so is one on `force`.
    settings.db.unlink()
    duckdb.connect(str(settings.db)).close()
    build_catalog(settings)
    assert query(settings, "SELECT count(*) FROM ingest.events")[0][0] == 3
    third = _identity(settings.db)
    build_catalog(settings, force=True)
    assert _identity(settings.db) != third
