"""What analysts get besides the database itself: a read-only SQL runner that prints a table (SELECT
only, reading no file outside the store), the page of every analyst-facing table and column
generated from the database's own comments, and the state of the last run (`flywheel status`)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import duckdb

from flywheel.config import Settings
from flywheel.objectstore import url
from flywheel.store import Layout


def connect_read_only(settings: Settings, fallback: bool = True) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the analysts' database, its views pointed at `settings`' store
    (`SET VARIABLE flywheel_store`); a clear error when it does not exist yet.

    When another process holds the file read-write (DuckDB then refuses every other connection),
    the same views are opened in memory instead (`catalog.connect_views`), unless `fallback` is
    False."""
    if not settings.db.exists():
        raise FileNotFoundError(f"no database at {settings.db}: run `flywheel run` (or `make demo`) first")
    try:
        con = duckdb.connect(str(settings.db), read_only=True)
    except duckdb.IOException as exc:
        if not fallback or "lock" not in str(exc).lower():
            raise
        from flywheel.catalog import connect_views

        return connect_views(settings)
    con.execute("SET TimeZone = 'UTC'")
    from flywheel.catalog import set_store

    set_store(con, Layout(settings.store))
    return con


def connect_sandboxed(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A read-only connection for queries an analyst types: DuckDB's external access is off except
    for the store's folder, which the views read (`allowed_directories`), and the configuration is
    locked, so a query reads no other file and cannot turn access back on (on an object store the
    allowed directory is the store's s3:// prefix: other keys are refused too). Writing is left to
    `run_query`'s statement check: DuckDB lets COPY write inside an allowed directory."""
    con = connect_read_only(settings)
    store = url(Layout(settings.store).root) + "/"  # a folder, or an s3:// prefix
    con.execute("SET allowed_directories = ?", [[store]])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def run_query(settings: Settings, sql: str, limit: int = 200) -> tuple[list[str], list[tuple], bool]:
    """(columns, rows, truncated) of a read-only query; at most `limit` rows are returned.

    Only SELECT statements run (FROM, WITH, VALUES, DESCRIBE, SHOW and SUMMARIZE are SELECTs), on
    `connect_sandboxed`'s connection: COPY, EXPORT, ATTACH, SET, PRAGMA, EXPLAIN (whose ANALYZE
    runs what it explains) and DDL raise ValueError; a file outside the store cannot be read."""
    kinds = {s.type.name for s in duckdb.extract_statements(sql)}
    if kinds - {"SELECT"}:
        raise ValueError(f"flywheel sql is read-only: it runs SELECT queries only (also FROM, WITH, DESCRIBE, SHOW, "
                         f"SUMMARIZE), not {', '.join(sorted(kinds - {'SELECT'}))}")
    con = connect_sandboxed(settings)
    try:
        rel = con.sql(sql)
        if rel is None:
            return [], [], False
        rows = rel.limit(limit + 1).fetchall()
        return list(rel.columns), rows[:limit], len(rows) > limit
    finally:
        con.close()


def format_rows(columns: list[str], rows: list[tuple], fmt: str = "table") -> str:
    """Rows as an aligned text table, CSV or JSON."""
    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(columns)
        w.writerows(rows)
        return out.getvalue()
    if fmt == "json":
        return json.dumps([dict(zip(columns, r)) for r in rows], indent=1, default=str)
    cells = [[_cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join([line, sep, *body])


def _cell(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return f"{v:.6g}"
    text = str(v).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def tables_page(settings: Settings) -> str:
    """Markdown listing every analyst-facing view and column with its description, read from the
    database's own comments."""
    con = connect_read_only(settings, fallback=False)  # the in-memory views carry no comments
    try:
        views = con.sql("""SELECT schema_name, view_name, comment FROM duckdb_views()
                           WHERE NOT internal AND schema_name NOT IN ('information_schema', 'pg_catalog')
                           ORDER BY schema_name, view_name""").fetchall()
        columns = con.sql("""SELECT schema_name, table_name, column_name, data_type, comment FROM duckdb_columns()
                             WHERE NOT internal AND schema_name NOT IN ('information_schema', 'pg_catalog')
                             ORDER BY schema_name, table_name, column_index""").fetchall()
    finally:
        con.close()
    by_view: dict[tuple[str, str], list] = {}
    for schema, table, column, dtype, comment in columns:
        by_view.setdefault((schema, table), []).append((column, dtype, comment))
    lines = ["# Analyst tables", "",
             "Generated from the database's own comments by `flywheel docs tables` (a test keeps this page equal",
             "to what the code declares). Open the database read-only: "
             "`duckdb.connect('data/flywheel.duckdb', read_only=True)`, then point its views at the store",
             "(the views hold no machine's path): `SET VARIABLE flywheel_store = 'data/store';` (the store's folder, or",
             "its `s3://` URL). It holds only these views and is rebuilt",
             "whole when they change: a table you create in it is dropped at the next run. Keep your own tables in a",
             "database of your own that attaches this one: `ATTACH 'data/flywheel.duckdb' AS fw (READ_ONLY)` (and the",
             "same `SET VARIABLE` line in that connection).", ""]
    for schema, view, comment in views:
        lines += [f"## `{schema}.{view}`", "", comment or "", "", "| column | type | description |", "|---|---|---|"]
        for column, dtype, ccomment in by_view.get((schema, view), []):
            lines.append(f"| `{column}` | {dtype} | {(ccomment or '').replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)


def status(settings: Settings) -> dict[str, Any]:
    """The state of the store: last data day and run, pending approvals, open alerts, quarantine."""
    con = connect_read_only(settings)
    try:
        def one(sql: str) -> Any:
            try:
                return con.sql(sql).fetchall()[0][0]
            except duckdb.Error:
                return None

        def rows(sql: str) -> list[tuple]:
            try:
                return con.sql(sql).fetchall()
            except duckdb.Error:
                return []

        last_day = one("SELECT max(event_date) FROM ingest.events")
        last_run = rows("SELECT run_id, max(decided_at), max(day) FROM signals.decision_log GROUP BY run_id "
                        "ORDER BY 2 DESC LIMIT 1")
        alerts = rows("""SELECT scenario, model, prompt_version, signal, baseline_value, current_value FROM signals.drift
                         WHERE severity = 'alert' AND day = (SELECT max(day) FROM signals.drift) ORDER BY ALL""")
        quarantined = one("SELECT count(*) FROM ingest.quarantine")
    finally:
        con.close()
    from flywheel.signals.feed import pending

    waiting = pending(settings)
    return {
        "last_event_day": str(last_day) if last_day else None,
        "last_run": {"run_id": last_run[0][0], "decided_at": str(last_run[0][1]), "data_day": str(last_run[0][2])} if last_run else None,
        "pending_approvals": [{"decision_id": r["decision_id"], "scenario": r["scenario"], "current": r["current"],
                               "recommended": r["recommended"]} for r in waiting.iter_rows(named=True)] if waiting.height else [],
        "open_alerts": [{"scenario": a[0], "model": a[1], "prompt_version": a[2], "signal": a[3],
                         "baseline": a[4], "current": a[5]} for a in alerts],
        "quarantined_records": quarantined,
    }
