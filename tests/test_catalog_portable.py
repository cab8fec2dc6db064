"""The analysts' database holds no machine's path: copied with the store to another folder (as
another machine would have them) and pointed at it with `SET VARIABLE flywheel_store`, every view
returns the rows it returned where it was built; opened without the variable, a view says what to
run instead of failing obscurely."""

from __future__ import annotations

import os
import shutil

import duckdb
import pytest

from conftest import nightly_sample
from flywheel.analyst import connect_read_only
from flywheel.catalog import build_catalog
from flywheel.signals.ledger import append_ledger
from flywheel.tables import views


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Five generated nights and one approval (so the approvals view reads the ledger), catalog built."""
    settings, _, _ = nightly_sample(tmp_path_factory.mktemp("portable") / "here", days=5, events_per_day=200)
    append_ledger(settings, {"decision_id": "d-1", "verdict": "approved", "by": "ana", "note": "checked",
                             "kind": "autonomy", "scenario": "refund_request", "level": "L2", "previous_level": "L1",
                             "day": "2026-03-05", "run_id": "night-2026-03-05"})
    build_catalog(settings)
    return settings


def _views(con) -> list[str]:
    return [f"{s}.{v}" for s, v in con.sql("SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal "
                                          "AND schema_name NOT IN ('information_schema', 'pg_catalog') "
                                          "ORDER BY ALL").fetchall()]


def _all_rows(con) -> dict[str, list[tuple]]:
    return {name: con.sql(f"SELECT * FROM {name} ORDER BY ALL").fetchall() for name in _views(con)}


def test_the_database_and_store_read_the_same_in_another_folder(built, tmp_path):
    con = connect_read_only(built, fallback=False)
    try:
        before = _all_rows(con)
    finally:
        con.close()
    assert set(before) == {f"{v.schema}.{v.name}" for v in views()}  # every view the registry declares
    assert before["ingest.events"] and before["signals.decisions"]
    assert [(r[0], r[1]) for r in before["signals.approvals"]] == [("d-1", "approved")]
    empty = sorted(name for name, rows in before.items() if not rows)
    assert len(empty) <= 6, empty  # most views have rows, so equality below says something

    other = tmp_path / "elsewhere"
    shutil.copytree(built.store, other / "store")
    shutil.copy(built.db, other / "flywheel.duckdb")
    original = built.store.resolve()
    moved = original.with_name("store.moved")
    original.rename(moved)  # a view still reading the original folder would now fail
    try:
        con = duckdb.connect(str(other / "flywheel.duckdb"), read_only=True)
        try:
            definitions = "\n".join(sql for (sql,) in con.sql("SELECT sql FROM duckdb_views() WHERE NOT internal").fetchall())
            assert "flywheel_store" in definitions
            assert str(original) not in definitions and str(original.parent) not in definitions
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET VARIABLE flywheel_store = ?", [str(other / "store")])
            assert _all_rows(con) == before
        finally:
            con.close()

        # The README's line, relative to the folder the analyst works in.
        cwd = os.getcwd()
        os.chdir(other)
        try:
            con = duckdb.connect("flywheel.duckdb", read_only=True)
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET VARIABLE flywheel_store = 'store';")
            assert con.sql("SELECT * FROM signals.decisions ORDER BY ALL").fetchall() == before["signals.decisions"]
            con.close()
        finally:
            os.chdir(cwd)
    finally:
        moved.rename(original)


def test_a_view_read_without_the_variable_says_how_to_set_it(built):
    con = duckdb.connect(str(built.db), read_only=True)
    try:
        for view in ("ingest.events", "ingest.landing_files", "signals.approvals", "outcomes.daily_rates"):
            with pytest.raises(duckdb.Error, match=r"SET VARIABLE flywheel_store = "):
                con.sql(f"SELECT count(*) FROM {view}").fetchall()
        # attached from an analyst's own database, the variable is the attaching connection's
        own = duckdb.connect()
        own.execute(f"ATTACH '{built.db}' AS fw (READ_ONLY)")
        with pytest.raises(duckdb.Error, match=r"SET VARIABLE flywheel_store = "):
            own.sql("SELECT count(*) FROM fw.ingest.events").fetchall()
        own.execute("SET VARIABLE flywheel_store = ?", [str(built.store)])
        assert own.sql("SELECT count(*) FROM fw.ingest.events").fetchall() == \
            con.execute("SET VARIABLE flywheel_store = ?", [str(built.store)]).sql(
                "SELECT count(*) FROM ingest.events").fetchall()
        own.close()
    finally:
        con.close()
