"""The DuckDB database analysts open: documented views over the Parquet store.

The database holds no data of its own, only views over the store's Parquet files, each with a
`COMMENT ON` description of the view and its columns. It is rebuilt whole into a temporary file
and renamed over `FLYWHEEL_DB`, so the nightly run never needs DuckDB's single writer lock on the
file an analyst has open: an analyst's open connection keeps reading the database as it was
(whose views still read the current Parquet files, each replaced atomically), and a new
connection sees the new one. The nightly run itself reads the views in memory (`connect_views`),
never the file, so an analyst holding it read-write does not fail the night either. The file holds
nothing but these views: a table an analyst creates in it is dropped when it is next rebuilt, so
analysts keep their own objects in a database of their own that ATTACHes this one READ_ONLY (README,
docs/cookbook.md). Paths are written into the view definitions as quoted literals
because DDL takes no bound parameters; they come from configuration, never from input data.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from flywheel.config import Settings
from flywheel.contracts import EVENT_FIELDS, INTERVENTION_FIELDS
from flywheel.ingest.manifest import MANIFEST_COLUMNS
from flywheel.schemas import DUPLICATES, QUARANTINE, STAGED, STORED
from flywheel.sql import load_sql, render, slots, sql_file
from flywheel.store import Layout, exclusive, write_bytes_atomic, write_parquet_atomic

_SOURCE_DOCS = {
    "event_date": "The UTC date of the event (the partition key).",
    "source_file": "The landing file the record came from, relative to the landing folder.",
    "source_line": "The record's line in that file (CSV: the row's last line; Parquet: row number; OTLP: span ordinal).",
    "record_hash": "Digest of the record's normalised content; equal hashes mean exact duplicates.",
}


@dataclass(frozen=True)
class View:
    """One analyst-facing view: its SQL body (with `{name}` slots for sources) and its docs."""

    schema: str
    name: str
    description: str
    sql: str
    columns: dict[str, str] = field(default_factory=dict)


def _contract_docs(fields: tuple) -> dict[str, str]:
    return {f.name: f.description for f in fields}


def views() -> list[View]:
    """Every view of the catalog, in creation order."""
    from flywheel.failures.views import failure_views
    from flywheel.outcomes.views import outcome_views
    from flywheel.signals.views import signal_views

    return ingest_views() + outcome_views() + failure_views() + signal_views()


def ingest_views() -> list[View]:
    """The views of the `ingest` schema."""
    return [
        View("ingest", "events", "AI audit events as stored: one row per AI invocation, deduplicated, UTC.",
             "SELECT * FROM {events}",
             {**_contract_docs(EVENT_FIELDS),
              "decision_path": "How the product acted on the output, as JSON text.",
              "attributes": "Anything else the producer sent, as JSON text (unknown top-level fields land here too).",
              "tool_calls": "Tools called: list of {name, status (ok/error/denied), arguments as JSON text}.",
              **_SOURCE_DOCS}),
        View("ingest", "interventions",
             "Human interventions as stored, each attached to its event's day; one row per intervention.",
             "SELECT * FROM {interventions}",
             {**_contract_docs(INTERVENTION_FIELDS),
              "event_date": "The UTC date of the intervention's event (the partition key).",
              **{k: v for k, v in _SOURCE_DOCS.items() if k != "event_date"}}),
        View("ingest", "quarantine",
             "Every input record that was not stored, with why: rejected at read time or while building a day.",
             "SELECT *, 'read' AS stage FROM {staged_quarantine} "
             "UNION ALL BY NAME SELECT *, 'partition' AS stage FROM {quarantine_events} "
             "UNION ALL BY NAME SELECT *, 'partition' AS stage FROM {quarantine_interventions}",
             {"record_kind": "events or interventions.",
              "source_file": "The landing file, relative to the landing folder.",
              "source_line": "Line (or row, or span) in that file; null for a whole bad file.",
              "reason_code": "Why, as a code (see the README's quarantine reasons).",
              "reason": "Why, in words, listing every problem found.",
              "raw": "The record as it came in (for partition-stage rows: as normalised).",
              "stage": "read: rejected while reading the file; partition: while building a day."}),
        View("ingest", "duplicates", "Exact duplicate records dropped, each pointing at the copy that was kept.",
             "SELECT * FROM {duplicates_events} UNION ALL BY NAME SELECT * FROM {duplicates_interventions}",
             {"record_kind": "events or interventions.", "record_id": "The duplicated id.",
              "source_file": "Where the dropped copy came from.", "source_line": "Its line.",
              "kept_file": "Where the kept copy came from.", "kept_line": "Its line."}),
        View("ingest", "landing_files", "Every landing file read, with what was read from it.",
             load_sql("landing_files_view"),
             {"path": "Path relative to the landing folder.", "file_id": "Stable id of the path.",
              "folder": "events, interventions or otlp.", "size_bytes": "File size when last read.",
              "event_days": "UTC days of the valid events read from it.",
              "intervention_days": "UTC days of the valid interventions read from it.",
              "seq": "Order in which files were first seen; earlier files win duplicate ids.",
              "format": "jsonl, csv, parquet or otlp.", "sha256": "Content digest when last read.",
              "records_read": "Records read (a whole bad file counts as one).",
              "staged_events": "Valid events read.", "staged_interventions": "Valid interventions read.",
              "quarantined_at_read": "Records rejected while reading.",
              "bad_file": "Why the whole file was rejected, if it was."}),
        View("ingest", "pending_interventions",
             "Valid interventions whose event has not been stored yet; they join when it arrives.",
             load_sql("pending_interventions_view"),
             {"intervention_id": "The intervention.", "event_id": "The event it waits for.",
              "occurred_at": "When the human acted (UTC).", "action": "What the human did.",
              "source_file": "Its landing file.", "source_line": "Its line."}),
        View("ingest", "file_reconciliation",
             "Per landing file: records read = stored + duplicates + quarantined + pending.",
             load_sql("file_reconciliation_view"),
             {"path": "Landing file.", "records_read": "Records read.",
              "stored": "Stored as events or interventions.", "duplicates": "Exact duplicates dropped.",
              "quarantined": "Quarantined, at read or partition time.",
              "pending": "Valid but not stored yet: interventions waiting for their event, or days not built yet.",
              "balanced": "records_read = stored + duplicates + quarantined + pending."}),
    ]


# The ingest sources of the views (`{name}` slots) and the schema of each, for a source with no
# file yet (read from an empty file of that schema, `_schema/<name>.parquet`).
SOURCE_SCHEMAS = {
    "events": STORED["events"], "interventions": STORED["interventions"],
    "staged_events": STAGED["events"], "staged_interventions": STAGED["interventions"],
    "staged_quarantine": QUARANTINE, "quarantine_events": QUARANTINE, "quarantine_interventions": QUARANTINE,
    "duplicates_events": DUPLICATES, "duplicates_interventions": DUPLICATES,
}


def unaccounted_sources(sources: dict[str, str]) -> dict[str, str]:
    """The `unaccounted_events` / `unaccounted_interventions` sources (staged records not yet
    stored, dropped as duplicates or quarantined) over the ingest `sources`."""
    return {f"unaccounted_{kind}": sql_file("unaccounted_staged", staged=sources[f"staged_{kind}"], stored=sources[kind],
                                            duplicates=sources[f"duplicates_{kind}"],
                                            quarantine=sources[f"quarantine_{kind}"])
            for kind in ("events", "interventions")}


def _sources(layout: Layout) -> dict[str, str]:
    """`{name}` slot -> a read_parquet(...) call over the matching files (or an empty typed template)."""
    root = layout.root.resolve()
    globs = {
        "events": layout.table_glob("events"),
        "interventions": layout.table_glob("interventions"),
        "staged_events": str(root / "staging" / "events" / "*" / "*.parquet"),
        "staged_interventions": str(root / "staging" / "interventions" / "*" / "*.parquet"),
        "staged_quarantine": str(root / "staging" / "quarantine" / "*.parquet"),
        "quarantine_events": layout.table_glob("quarantine/events"),
        "quarantine_interventions": layout.table_glob("quarantine/interventions"),
        "duplicates_events": layout.table_glob("duplicates/events"),
        "duplicates_interventions": layout.table_glob("duplicates/interventions"),
    }
    out: dict[str, str] = {}
    for name, pattern in globs.items():
        if not glob.glob(pattern):
            template = root / "_schema" / f"{name}.parquet"
            if not template.exists():
                write_parquet_atomic(pa.Table.from_pylist([], schema=SOURCE_SCHEMAS[name]), template)
            pattern = str(template)
        out[name] = f"read_parquet({_literal(pattern)}, union_by_name = true, hive_partitioning = false)"
    manifests = str(root / "manifests" / "*.json")
    if not glob.glob(manifests):
        manifests = str(root / "_schema" / "manifests.json")
        if not Path(manifests).exists():
            write_bytes_atomic(b"[]", Path(manifests))
    out["manifests"] = f"read_json({_literal(manifests)}, columns = {MANIFEST_COLUMNS})"
    approvals = root / "decisions" / "approvals.jsonl"
    if approvals.exists() and approvals.stat().st_size:
        out["approvals"] = (f"read_json({_literal(str(approvals))}, format = 'newline_delimited', "
                            f"columns = {_APPROVAL_COLUMNS})")
    else:
        out["approvals"] = "(SELECT " + ", ".join(
            f"CAST(NULL AS {t}) AS \"{c}\"" for c, t in _APPROVAL_TYPES) + " WHERE false)"
    out.update(unaccounted_sources(out))
    return out


_APPROVAL_TYPES = (("decision_id", "VARCHAR"), ("verdict", "VARCHAR"), ("by", "VARCHAR"), ("note", "VARCHAR"),
                   ("kind", "VARCHAR"), ("scenario", "VARCHAR"), ("level", "VARCHAR"), ("previous_level", "VARCHAR"),
                   ("day", "DATE"), ("run_id", "VARCHAR"), ("at", "TIMESTAMPTZ"))
_APPROVAL_COLUMNS = "{" + ", ".join(f"'{c}': '{t}'" for c, t in _APPROVAL_TYPES) + "}"


def fill(sql: str, sources: dict[str, str], layout: Layout | None = None) -> str:
    """`sql` rendered by `flywheel.sql.render`: each `{name}` slot with the source of that name, each
    `{table:<path>}` slot with a read of that stored table's day files, each `{glob:<pattern>}` slot
    with a read of the store's files matching it (no rows when there are none: `table:`/`glob:` need
    a `layout`). A slot that is none of these is left unfilled, so render raises `SlotError`."""
    def source(name: str) -> str | None:
        form, _, rest = name.partition(":")
        if rest and form in ("table", "glob") and layout is not None:
            pattern = layout.table_glob(rest) if form == "table" else str(layout.root.resolve() / rest)
            if glob.glob(pattern):
                return f"read_parquet({_literal(pattern)}, union_by_name = true, hive_partitioning = false)"
            return "(SELECT NULL AS not_built_yet WHERE false)"
        return sources.get(name)

    values = {name: source(name) for name in slots(sql)}
    return render(sql, {name: value for name, value in values.items() if value is not None})


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _definitions(layout: Layout) -> list[tuple[View, str]]:
    sources = _sources(layout)
    return [(view, fill(view.sql, sources, layout)) for view in views()]


def _fingerprint(definitions: list[tuple[View, str]]) -> str:
    text = json.dumps([[v.schema, v.name, v.description, body, v.columns] for v, body in definitions])
    return hashlib.sha256(text.encode()).hexdigest()


def _stamp(target: Path, digest: str) -> str:
    st = target.stat()
    return f"{digest} {st.st_ino} {st.st_size} {st.st_mtime_ns}"


def _create_views(con: duckdb.DuckDBPyConnection, definitions: list[tuple[View, str]]) -> None:
    for view, body in definitions:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {view.schema}")
        con.execute(f"CREATE OR REPLACE VIEW {view.schema}.{view.name} AS {body}")


def connect_views(settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory connection holding every analyst view over the store (the same definitions as
    the database at `settings.db`, without their comments), in UTC.

    What the nightly run reads its own tables through: it never opens `settings.db`, so an analyst
    holding that file, even read-write (the DuckDB CLI's default), never fails the night."""
    from flywheel.signals.ledger import repair_ledger

    repair_ledger(settings)
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        _create_views(con, _definitions(Layout(settings.store)))
    except BaseException:
        con.close()
        raise
    return con


def build_catalog(settings: Settings, force: bool = False) -> Path:
    """Rebuild the analysts' database at `settings.db` atomically; returns its path.

    The views read the store's files through globs, so a new day's files show without a rebuild.
    The database is rebuilt only when a view's definition changes (a table gets its first file,
    the approvals file appears, the code's views change) or the database file is not the one last
    built (`force` rebuilds regardless): the stamp of the last build, kept in the store, records
    the definitions' digest and the file's identity.
    """
    from flywheel.signals.ledger import repair_ledger

    layout = Layout(settings.store)
    target = settings.db
    target.parent.mkdir(parents=True, exist_ok=True)
    repair_ledger(settings)  # signals.approvals reads the ledger: a torn last line would break every query of it
    stamp = layout.root / "_schema" / "catalog.stamp"
    with exclusive(layout.lock("catalog")):
        # what a build killed before its rename left (builds are serialised by this lock)
        for leftover in target.parent.glob(glob.escape(f".{target.name}.") + "*.tmp*"):
            if leftover.name.endswith((".tmp", ".tmp.wal")):
                leftover.unlink(missing_ok=True)
        definitions = _definitions(layout)
        digest = _fingerprint(definitions)
        if not force and target.exists() and stamp.exists() and stamp.read_text() == _stamp(target, digest):
            return target
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        os.unlink(tmp)  # duckdb must create the file itself
        try:
            con = duckdb.connect(tmp)
            try:
                con.execute("SET TimeZone = 'UTC'")
                con.execute("BEGIN")  # one transaction: one commit for every view and comment
                _create_views(con, definitions)
                for view, _ in definitions:
                    con.execute(f"COMMENT ON VIEW {view.schema}.{view.name} IS {_literal(view.description)}")
                # the columns of every view at once (each look-up binds every view again)
                columns = set(con.sql("SELECT schema_name, table_name, column_name FROM duckdb_columns() "
                                      "WHERE NOT internal").fetchall())
                comments = [f'COMMENT ON COLUMN {view.schema}.{view.name}."{column}" IS {_literal(doc)};'
                            for view, _ in definitions for column, doc in view.columns.items()
                            if (view.schema, view.name, column) in columns]
                if comments:
                    con.execute("\n".join(comments))
                con.execute("COMMIT")
                con.execute("CHECKPOINT")
            finally:
                con.close()
            os.replace(tmp, target)
            write_bytes_atomic(_stamp(target, digest).encode(), stamp)
        finally:
            for leftover in (tmp, tmp + ".wal"):
                Path(leftover).unlink(missing_ok=True)
    return target
