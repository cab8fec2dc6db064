"""Build one day's stored partitions of events and interventions from the staged records.

For event day D, `build_events` reads every file's staged events of D, keeps the first copy of each
`event_id` (first by the order files were first seen, then file path, then line), drops later
identical copies as exact duplicates (recorded in `duplicates`), and quarantines later copies with
different content as `conflicting_duplicate`. `build_interventions` then takes the staged
interventions dated from D-1 to D + max review lag whose event is stored in D, applies the same
duplicate rule by `intervention_id`, quarantines those stamped before their event (beyond
`contracts.CLOCK_SKEW_TOLERANCE`) and stores the rest with `event_date` = D. Interventions whose
event has not arrived stay staged, visible in `ingest.pending_interventions`, and are picked up
when their event's day is built. Each output replaces the day's file atomically: running a day
twice leaves the same files. A build holds the staging lock (`store.shared`) from reading the
staged pieces until its files are written, so a landing sync that stages more of the day waits for
it and no build that read older pieces writes after one that read newer ones. On an object store
the lock is the exclusive lease (S3 has no shared lease): day builds then run one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import pyarrow as pa

from flywheel.config import Settings
from flywheel.contracts import CLOCK_SKEW_TOLERANCE, CONTRACTS
from flywheel.engine import connect
from flywheel.ingest.canonical import same_content
from flywheel.objectstore import url
from flywheel.schemas import DUPLICATES, QUARANTINE, STORED
from flywheel.sql import sql_file
from flywheel.store import Layout, shared, write_batches_atomic, write_parquet_atomic


@dataclass(frozen=True)
class PartitionResult:
    """Counts of one built day: staged in, and where every staged record went."""

    kind: str
    day: date
    staged: int
    stored: int
    duplicates: int
    quarantined: int
    source_files: tuple[str, ...]


def intervention_window(day: date, lag: int) -> list[date]:
    """The days of the staged interventions `build_interventions(day)` reads: day-1 .. day+lag."""
    return [day + timedelta(days=i) for i in range(-1, lag + 1)]


def event_days_of_intervention(occurred: date, lag: int) -> list[date]:
    """The event days whose `intervention_window` holds `occurred`: occurred-lag .. occurred+1."""
    return [occurred + timedelta(days=i) for i in range(-lag, 2)]


def build_events(settings: Settings, day: date) -> PartitionResult:
    """Write the stored events, duplicates and conflict quarantine of event day `day`."""
    layout = Layout(settings.store)
    # The staging lock is held until the day is written: a sync (exclusive) that stages more of this
    # day waits, so no build that read older pieces can write after a build that read the new ones.
    with shared(layout.lock("staging")), connect(settings) as con:  # a large day spills; closed on return
        files = _staged_files(layout, "events", [day])
        if files:
            _view_staged(con, files)
            return _resolve(con, layout, "events", "event_id", day, before_event_sql=None, rid="_rid")
        _load_staged(con, "events", files)
        con.execute("ALTER TABLE staged ADD COLUMN event_occurred_at TIMESTAMPTZ")
        return _resolve(con, layout, "events", "event_id", day, before_event_sql=None)


def build_interventions(settings: Settings, day: date) -> PartitionResult:
    """Write the stored interventions (and their duplicates and quarantine) of event day `day`.

    Assumes the events of `day` are already built.
    """
    layout = Layout(settings.store)
    with shared(layout.lock("staging")), connect(settings) as con:  # held until written, as in build_events
        events_file = layout.table("events", day)
        if events_file.exists():
            con.execute("CREATE TEMP TABLE day_events AS SELECT event_id, occurred_at FROM read_parquet(?)",
                        [url(events_file)])
        else:
            con.execute("CREATE TEMP TABLE day_events (event_id VARCHAR, occurred_at TIMESTAMPTZ)")
        files = _staged_files(layout, "interventions", intervention_window(day, settings.max_review_lag_days))
        if files:
            source = "read_parquet(?, union_by_name = true, hive_partitioning = false)"
            con.execute(sql_file("staged_interventions", source=source), [day, files])
        else:
            _load_staged(con, "interventions", files)
            con.execute(sql_file("staged_interventions", source="staged"), [day])
        return _resolve(con, layout, "interventions", "intervention_id", day,
                        before_event_sql=CLOCK_SKEW_TOLERANCE.total_seconds())


def _staged_files(layout: Layout, kind: str, days: list[date]) -> list[str]:
    """The staged pieces of `kind` of `days` (each day's sorted by name), as DuckDB reads them."""
    files: list[str] = []
    for d in days:
        folder = layout.staged(kind, d, "x").parent
        if folder.is_dir():
            files.extend(sorted(url(p) for p in folder.glob("*.parquet")))
    return files


def _load_staged(con: duckdb.DuckDBPyConnection, kind: str, files: list[str]) -> None:
    template = pa.Table.from_pylist([], schema=STORED[kind].append(pa.field("ingest_seq", pa.int64())))
    con.register("template", template)
    if files:
        con.execute("CREATE TEMP TABLE staged AS SELECT * FROM read_parquet(?, union_by_name = true, hive_partitioning = false)", [files])
    else:
        con.execute("CREATE TEMP TABLE staged AS SELECT * FROM template")
    con.unregister("template")


def _view_staged(con: duckdb.DuckDBPyConnection, files: list[str]) -> None:
    """`staged` as a view over an events day's pieces, with a row id `_rid` (piece, row in piece): a
    view, not a table, so the ranking reads the pieces' key columns and the stored rows stream from
    them again; a day's full rows are never held twice (once loaded, once sorted)."""
    rel = con.read_parquet(files, union_by_name=True, hive_partitioning=False)
    rel.project(f"*, CAST(NULL AS TIMESTAMPTZ) AS event_occurred_at, {_PIECE_ROW} AS _rid").create_view("staged")


def _resolve(con: duckdb.DuckDBPyConnection, layout: Layout, kind: str, id_col: str, day: date,
             before_event_sql: float | None, rid: str = "rowid") -> PartitionResult:
    """Rank `staged`'s copies of each id and write the day's stored rows, duplicates and conflict
    quarantine; `rid` is `staged`'s row id (`rowid` of a temp table, `_rid` of the events' view)."""
    con.execute(sql_file("rank_duplicates", id=id_col, rid=rid))
    _recheck_conflicts(con, kind, id_col, rid)
    if before_event_sql is not None:
        con.execute(sql_file("before_event"), [before_event_sql])
    staged = con.sql("SELECT count(*) FROM ranked").fetchall()[0][0]
    dups = con.sql(sql_file("duplicate_rows", id=id_col), params=[kind]).to_arrow_table()
    raw_columns = ", ".join(f'"{f.name}"' for f in CONTRACTS[kind])
    if con.sql("SELECT count(*) FROM ranked WHERE verdict IN ('conflict', 'before_event')").fetchall()[0][0]:
        quarantine = con.sql(sql_file("conflict_rows", id=id_col, raw_columns=raw_columns, rid=rid),
                             params=[kind]).to_arrow_table()
    else:  # nothing to join back to the full rows (a scan of the day's pieces on a view)
        quarantine = pa.Table.from_pylist([], schema=QUARANTINE)
    sources = tuple(r[0] for r in con.sql("SELECT DISTINCT source_file FROM ranked ORDER BY 1").fetchall())
    write_parquet_atomic(dups.cast(DUPLICATES), layout.table(f"duplicates/{kind}", day))
    write_parquet_atomic(quarantine.cast(QUARANTINE), layout.table(f"quarantine/{kind}", day))
    columns = ", ".join(f'a."{name}"' for name in STORED[kind].names)
    stored = con.sql(sql_file("stored_rows", columns=columns, id=id_col, rid=rid))
    n_stored = write_batches_atomic(stored.to_arrow_reader(_BATCH_ROWS), STORED[kind], layout.table(kind, day))
    return PartitionResult(kind, day, staged, n_stored, dups.num_rows, quarantine.num_rows, sources)


def _recheck_conflicts(con: duckdb.DuckDBPyConnection, kind: str, id_col: str, rid: str) -> None:
    """A copy whose hash differs from its id's first copy is a conflict only if its content differs
    too (`canonical.same_content`: JSON fields as values): copies staged by another version (another
    hash, JSON keys sorted) or sent with their JSON keys in another order are duplicates. Conflicts are
    rare (~0.07% of a generated day's events), so the pairs are compared here, in Python, a batch of
    `_PAIRS` at a time (a store staged before the hash changed and a file delivered again after it
    makes every copy of that file a pair to compare)."""
    if not con.sql("SELECT count(*) FROM ranked WHERE verdict = 'conflict'").fetchall()[0][0]:
        return
    names = [f.name for f in CONTRACTS[kind]]
    pairs = con.execute(f"""
        SELECT r._rid, struct_pack({', '.join(f'"{n}" := a."{n}"' for n in names)}) AS copy,
               struct_pack({', '.join(f'"{n}" := f."{n}"' for n in names)}) AS first
        FROM ranked r
        JOIN ranked k ON k."{id_col}" = r."{id_col}" AND k.rn = 1
        JOIN staged a ON a.{rid} = r._rid
        JOIN staged f ON f.{rid} = k._rid
        WHERE r.verdict = 'conflict'
    """)
    same: list[int] = []
    while batch := pairs.fetchmany(_PAIRS):
        same.extend(rowid for rowid, copy, first in batch if same_content(kind, copy, first))
    for start in range(0, len(same), _PAIRS):
        con.execute("UPDATE ranked SET verdict = 'duplicate' WHERE _rid IN (SELECT unnest(?))",
                    [same[start:start + _PAIRS]])


_PAIRS = 10_000

_BATCH_ROWS = 131_072
# A staged piece's row: its file's place in the read (read_parquet's file_index) and its row in the file.
_PIECE_ROW = "(CAST(file_index AS BIGINT) << 32) | file_row_number"
