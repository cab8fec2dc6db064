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
docs/cookbook.md). The views, their documentation and the tables they read are declared in the table
registry, flywheel.tables.

No view holds a machine's path: each reads under the store's root held in the DuckDB variable
`flywheel_store` (`read_parquet(getvariable('flywheel_store') || '/events/*/data.parquet')`), so
the database file can be handed to another machine together with (or pointing at) the store.
flywheel's own connections set it (`set_store`); anyone opening the file otherwise runs
`SET VARIABLE flywheel_store = 'data/store';` first, and a view read without it fails with an
error saying so. On an object store (`FLYWHEEL_STORE=s3://bucket/prefix`) the variable holds the
store's URL and flywheel's connections also register its s3fs filesystem with DuckDB; the database
file itself stays local (FLYWHEEL_DB), built in a temporary file and renamed as above, and so do the
stamp of its last build and the lock that serialises builds (beside it): each machine of a
deployment keeps its own file, rebuilt only when the definitions change, not whenever another
machine built its own.
The relative paths are written into the views as quoted literals because DDL
takes no bound parameters; they come from the table registry, never from input data.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa

from flywheel.config import Settings
from flywheel.ingest.manifest import MANIFEST_COLUMNS
from flywheel.objectstore import Listing, is_remote, listing, register, url
from flywheel.sql import render, slots, sql_file
from flywheel.store import Layout, exclusive, write_bytes_atomic, write_parquet_atomic
from flywheel.tables import APPROVALS_LEDGER, SOURCE_SCHEMAS, TABLES, View, views


def unaccounted_sources(sources: dict[str, str]) -> dict[str, str]:
    """The `unaccounted_events` / `unaccounted_interventions` sources (staged records not yet
    stored, dropped as duplicates or quarantined) over the ingest `sources`."""
    return {f"unaccounted_{kind}": sql_file("unaccounted_staged", staged=sources[f"staged_{kind}"], stored=sources[kind],
                                            duplicates=sources[f"duplicates_{kind}"],
                                            quarantine=sources[f"quarantine_{kind}"])
            for kind in ("events", "interventions")}


STORE_VARIABLE = "flywheel_store"
_UNSET = ("the flywheel database reads the store through a variable: run SET VARIABLE flywheel_store = "
          "'<the store: a folder such as data/store, or its s3:// URL>'; first (README, The database)")
# The root every view reads under: the variable, without a trailing "/", or a clear error when unset.
_ROOT = (f"(CASE WHEN getvariable('{STORE_VARIABLE}') IS NULL THEN CAST(error({{unset}}) AS VARCHAR) "
         f"ELSE rtrim(getvariable('{STORE_VARIABLE}'), '/') END)")


def store_root(layout: Layout) -> str:
    """The value of `flywheel_store` for `layout`'s store: its absolute folder, or its s3:// URL."""
    return url(layout.root)


# On an object store, how long a view connection keeps a folder's listing (objectstore.register):
# a new day's files show in an open analyst session after at most this long.
LISTING_SECONDS = 30.0


def set_store(con: duckdb.DuckDBPyConnection, layout: Layout, known: Listing | None = None) -> None:
    """Point `con`'s views at `layout`'s store (`SET VARIABLE flywheel_store`); on an object store,
    also give `con` its filesystem (DuckDB's `register_filesystem`: no httpfs extension needed),
    keeping listings `LISTING_SECONDS` (binding every view otherwise asks for each file's details)."""
    if known is None:
        known = listing(layout.root, LISTING_SECONDS)
    register(con, layout.root, known.fs if known is not None else None)
    con.execute(f"SET VARIABLE {STORE_VARIABLE} = ?", [store_root(layout)])


def at_store(relative: str) -> str:
    """SQL for the path `relative` (a file or glob under the store) as the views spell it: the
    store's root from the `flywheel_store` variable, so no view holds a machine's path."""
    return f"({_ROOT.format(unset=_literal(_UNSET))} || {_literal('/' + relative)})"


def _exists(layout: Layout, relative: str, known: Listing | None = None) -> bool:
    """Whether any file of the store matches the glob `relative` (on a bucket, answered from
    `known` when given: the listing the connection's views are then bound with)."""
    if is_remote(layout.root):
        if known is not None:
            return known.exists(relative)
        return next(iter(layout.root.glob(relative)), None) is not None
    return bool(glob.glob(str(layout.root.resolve() / relative)))


def _read_parquet(relative: str) -> str:
    return f"read_parquet({at_store(relative)}, union_by_name = true, hive_partitioning = false)"


def _sources(layout: Layout, known: Listing | None = None) -> dict[str, str]:
    """`{name}` slot -> a read_parquet(...) call over the matching files (or an empty typed template)."""
    out: dict[str, str] = {}
    for table in TABLES:
        if not table.slot:
            continue
        relative = table.files or f"{table.path}/*/data.parquet"
        if not _exists(layout, relative, known):
            relative = f"_schema/{table.slot}.parquet"
            template = layout.root / relative
            if not template.exists():
                write_parquet_atomic(pa.Table.from_pylist([], schema=SOURCE_SCHEMAS[table.slot]), template)
        out[table.slot] = _read_parquet(relative)
    manifests = "manifests/*.json"
    if not _exists(layout, manifests, known):
        manifests = "_schema/manifests.json"
        if not (layout.root / manifests).exists():
            write_bytes_atomic(b"[]", layout.root / manifests)
    out["manifests"] = f"read_json({at_store(manifests)}, columns = {MANIFEST_COLUMNS})"
    approvals = layout.root / APPROVALS_LEDGER
    if approvals.exists() and approvals.stat().st_size:
        out["approvals"] = (f"read_json({at_store(APPROVALS_LEDGER)}, format = 'newline_delimited', "
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


def fill(sql: str, sources: dict[str, str], layout: Layout | None = None, known: Listing | None = None) -> str:
    """`sql` rendered by `flywheel.sql.render`: each `{name}` slot with the source of that name, each
    `{table:<path>}` slot with a read of that stored table's day files, each `{glob:<pattern>}` slot
    with a read of the store's files matching it (no rows when there are none: `table:`/`glob:` need
    a `layout`). A slot that is none of these is left unfilled, so render raises `SlotError`."""
    def source(name: str) -> str | None:
        form, _, rest = name.partition(":")
        if rest and form in ("table", "glob") and layout is not None:
            relative = f"{rest}/*/data.parquet" if form == "table" else rest
            if _exists(layout, relative, known):
                return _read_parquet(relative)
            return "(SELECT NULL AS not_built_yet WHERE false)"
        return sources.get(name)

    values = {name: source(name) for name in slots(sql)}
    return render(sql, {name: value for name, value in values.items() if value is not None})


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _definitions(layout: Layout, known: Listing | None = None) -> list[tuple[View, str]]:
    sources = _sources(layout, known)
    return [(view, fill(view.sql, sources, layout, known)) for view in views()]


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
        layout = Layout(settings.store)
        known = listing(layout.root, LISTING_SECONDS)
        set_store(con, layout, known)
        _create_views(con, _definitions(layout, known))
    except BaseException:
        con.close()
        raise
    return con


def build_catalog(settings: Settings, force: bool = False) -> Path:
    """Rebuild the analysts' database at `settings.db` atomically; returns its path.

    The views read the store's files through globs, so a new day's files show without a rebuild.
    The database is rebuilt only when a view's definition changes (a table gets its first file,
    the approvals file appears, the code's views change) or the database file is not the one last
    built (`force` rebuilds regardless): the stamp of the last build, kept in the store (beside the
    database when the store is on an object store: the file is this machine's), records
    the definitions' digest and the file's identity.
    """
    from flywheel.signals.ledger import repair_ledger

    layout = Layout(settings.store)
    target = settings.db
    target.parent.mkdir(parents=True, exist_ok=True)
    repair_ledger(settings)  # signals.approvals reads the ledger: a torn last line would break every query of it
    if is_remote(layout.root):
        stamp, lock = (target.parent / f".{target.name}.{what}" for what in ("stamp", "lock"))
    else:
        stamp, lock = layout.root / "_schema" / "catalog.stamp", layout.lock("catalog")
    with exclusive(lock):
        # what a build killed before its rename left (builds are serialised by this lock)
        for leftover in target.parent.glob(glob.escape(f".{target.name}.") + "*.tmp*"):
            if leftover.name.endswith((".tmp", ".tmp.wal")):
                leftover.unlink(missing_ok=True)
        known = listing(layout.root, LISTING_SECONDS)  # one listing of the bucket for the whole build
        definitions = _definitions(layout, known)
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
                set_store(con, layout, known)  # DuckDB binds each view as it is created
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
