"""The one SQL convention: `.sql` files of flywheel.sql, values bound as parameters, `{name}` slots
(code-chosen identifiers and relations) filled by `flywheel.sql.render`, which fails on a slot left
unfilled and on a slot given that the text does not have."""

from __future__ import annotations

import re
from importlib.resources import files

import duckdb
import pytest

from flywheel.sql import SlotError, load_sql, render, slots, sql_file

SQL_FILES = sorted(p.name[:-4] for p in files("flywheel.sql").iterdir() if p.name.endswith(".sql"))

# Every slot a .sql file may have, with the code that fills it: a slot outside this list (a typo,
# a renamed slot) is a file that no code renders.
KNOWN_SLOTS = {
    # flywheel/ingest/partition.py
    "id", "rid", "raw_columns", "columns", "source",
    # flywheel/catalog.py unaccounted_sources (unaccounted_staged.sql)
    "staged", "stored", "duplicates", "quarantine",
    # flywheel/catalog.py sources of the views (and reconcile.run_file_accounts)
    "manifests", "events", "interventions", "duplicates_events", "duplicates_interventions",
    "quarantine_events", "quarantine_interventions", "unaccounted_events", "unaccounted_interventions",
}


def test_render_fills_every_slot_and_leaves_format_placeholders_and_struct_literals() -> None:
    sql = "SELECT format('{id} {}', \"{id}\"), {'a': 1} AS s FROM {source}"
    assert slots(sql) == {"id", "source"}
    assert render(sql, {"id": "event_id", "source": "staged"}) == \
        "SELECT format('event_id {}', \"event_id\"), {'a': 1} AS s FROM staged"


def test_render_fails_on_a_slot_left_unfilled() -> None:
    with pytest.raises(SlotError, match=r"slots left unfilled: \['source'\]"):
        render("SELECT \"{id}\" FROM {source}", {"id": "event_id"})


def test_render_fails_on_an_unknown_slot_given() -> None:
    with pytest.raises(SlotError, match=r"unknown slots given: \['ident'\]"):
        render("SELECT \"{id}\" FROM staged", {"id": "event_id", "ident": "event_id"})
    with pytest.raises(SlotError, match="unfilled.*unknown"):
        sql_file("duplicate_rows", ident="event_id")


def test_a_file_without_slots_takes_none() -> None:
    assert sql_file("before_event") == load_sql("before_event")
    with pytest.raises(SlotError, match="unknown"):
        sql_file("before_event", id="event_id")


def test_the_sql_files_are_package_data() -> None:
    assert {"rank_duplicates", "conflict_rows", "unaccounted_staged", "calibration_window"} <= set(SQL_FILES)


@pytest.mark.parametrize("name", SQL_FILES)
def test_every_sql_file_has_only_known_slots_and_parses_once_rendered(name: str) -> None:
    text = load_sql(name)
    found = slots(text)
    assert found <= KNOWN_SLOTS | {s for s in found if re.fullmatch(r"table:[a-z_]+/[a-z_]+", s)}, name
    rendered = render(text, {s: "t" if s not in {"columns", "raw_columns"} else "c" for s in found})
    assert not slots(rendered)
    duckdb.extract_statements(rendered)  # parses: no half-rendered text


def test_engine_settings_are_bound_values(tmp_path) -> None:
    """engine.connect binds its memory limit and spill folder (a store path with a quote in it)."""
    from flywheel.config import Settings
    from flywheel.engine import connect

    settings = Settings(landing=tmp_path / "landing", store=tmp_path / "it's store", db=tmp_path / "db.duckdb",
                        duckdb_memory="1GB")
    with connect(settings) as con:
        limit, spill = con.sql("SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchall()[0]
    assert limit == "953.6 MiB"  # 1 GB = 10^9 bytes
    assert spill.startswith(str(tmp_path / "it's store" / "_tmp" / "duckdb"))


def test_the_count_invariant_reads_each_table_with_its_own_bound_statement(tmp_path) -> None:
    """outcomes.invariants.count_mismatches: stored events, outcomes and the daily mart's sum per day."""
    from datetime import date

    import pyarrow as pa

    from flywheel.config import Settings
    from flywheel.outcomes.invariants import count_mismatches
    from flywheel.store import Layout, write_parquet_atomic
    from flywheel.tables import DAILY_RATES, EVENT_OUTCOMES, EVENTS

    settings = Settings(landing=tmp_path / "landing", store=tmp_path / "store", db=tmp_path / "db.duckdb")
    layout, day = Layout(settings.store), date(2026, 3, 1)
    write_parquet_atomic(pa.table({"event_id": ["a", "b", "c"]}), layout.table(EVENTS.path, day))
    write_parquet_atomic(pa.table({"event_id": ["a", "b", "c"]}), layout.table(EVENT_OUTCOMES.path, day))
    write_parquet_atomic(pa.table({"events": [1, 1]}), layout.table(DAILY_RATES.path, day))
    assert count_mismatches(settings, [day, date(2026, 3, 2)]) == [
        {"day": "2026-03-01", "stored_events": 3, "outcomes": 3, "daily_rates_events": 2}]
