"""The table registry (flywheel.tables): one declaration per table, from which the catalog's views,
the empty stand-ins of ingest tables with no file yet, and the assets' keys are derived."""

from __future__ import annotations

from datetime import date

import polars as pl
import pyarrow.parquet as pq

from flywheel import tables
from flywheel.catalog import connect_views
from flywheel.outcomes.rates import RATES
from flywheel.schemas import QUARANTINE, STAGED, STORED
from flywheel.store import Layout


def test_paths_slots_and_views_are_declared_once():
    paths = [t.path for t in tables.TABLES]
    slots = [t.slot for t in tables.TABLES if t.slot]
    names = [(v.schema, v.name) for v in tables.views()]
    assert len(paths) == len(set(paths)) == 24
    assert len(slots) == len(set(slots)) == 9
    assert len(names) == len(set(names)) == 24
    # a table's files lie under its path
    assert all(t.files is None or t.files.startswith(t.path + "/") for t in tables.TABLES)


def test_a_tables_view_reads_its_files_and_is_named_by_its_asset_key():
    assert tables.EVENTS.view.sql == "SELECT * FROM {events}"
    assert (tables.DAILY_RATES.view.schema, tables.DAILY_RATES.view.name) == ("outcomes", "daily_rates")
    assert tables.DAILY_RATES.view.sql == "SELECT * FROM {table:outcomes/daily_rates}"
    # the clusters table is read as each night's snapshot; failures.clusters is the latest night
    assert (tables.CLUSTERS.view.schema, tables.CLUSTERS.view.name) == ("failures", "cluster_snapshots")
    assert tables.DECISION_LOG.view.sql == "SELECT * FROM {glob:decisions/log/*/*.parquet}"
    assert tables.DECISION_LOG.asset_key == ("signals", "decisions")
    assert tables.QUARANTINE_EVENTS.view is None  # read through ingest.quarantine
    for table in tables.TABLES:
        if table.view is not None:
            assert table.view.schema == table.asset_key[0], table.path


def test_views_of_one_schema_keep_the_catalogs_order():
    assert [v.name for v in tables.views("signals")] == [
        "drift", "gate_evaluations", "decisions", "decision_log", "approvals"]
    assert [v.name for v in tables.views("failures")] == [
        "assignments", "clusters", "cluster_snapshots", "cluster_history", "cluster_daily", "edit_patterns"]


def test_rate_docs_cover_exactly_the_rates():
    assert list(tables.RATE_WORDS) == list(RATES)
    documented = set(tables.DAILY_RATES.columns)
    assert {f"{r}{s}" for r in RATES for s in ("", "_lo", "_hi")} <= documented


def test_every_table_is_written_by_an_asset_of_the_definitions():
    import dagster as dg

    from assets.definitions import defs

    keys = set(defs.resolve_asset_graph().get_all_asset_keys())
    missing = [t.path for t in tables.TABLES if dg.AssetKey(t.asset_key) not in keys]
    assert missing == []


def test_an_ingest_table_with_no_file_is_read_as_an_empty_file_of_its_schema(settings):
    with connect_views(settings) as con:
        events = [r[0] for r in con.sql("DESCRIBE ingest.events").fetchall()]
        quarantine = [r[0] for r in con.sql("DESCRIBE ingest.quarantine").fetchall()]
        assert con.sql("SELECT count(*) FROM ingest.events").fetchall() == [(0,)]
    assert events == STORED["events"].names
    assert quarantine == QUARANTINE.names + ["stage"]
    root = Layout(settings.store).root
    assert pq.read_schema(root / "_schema" / "staged_interventions.parquet").names == STAGED["interventions"].names
    assert not Layout(settings.store).table(tables.EVENTS.path, date(2025, 3, 1)).exists()


def test_every_asset_that_writes_a_table_says_it_republishes_the_catalog():
    """Each of these assets ends with flywheel.catalog.build_catalog; its description says so."""
    import dagster as dg

    from assets.definitions import defs

    graph = defs.resolve_asset_graph()
    silent = sorted({t.asset_key for t in tables.TABLES
                     if "republishing the analysts' catalog" not in (graph.get(dg.AssetKey(t.asset_key)).description or "")})
    assert silent == []


def test_a_declared_schema_is_what_the_view_documents_and_what_polars_builds():
    declared = [t for t in tables.TABLES if t.schema is not None and t.view is not None]
    assert {t.path for t in declared} >= {"events", "interventions", "outcomes/recovery", "outcomes/calibration",
                                          "outcomes/reliability_bins", "signals/drift", "signals/gate_evaluations",
                                          "signals/decisions", "failures/clusters", "failures/cluster_history",
                                          "failures/edit_patterns"}
    for table in declared:
        assert set(table.schema.names) == set(table.columns), table.path
    assert list(tables.RECOVERY.polars_schema().items())[:3] == [
        ("event_date", pl.Date), ("scenario", pl.String), ("failure_runs", pl.Int64)]
    assert tables.DECISIONS.polars_schema()["requires_approval"] == pl.Boolean
