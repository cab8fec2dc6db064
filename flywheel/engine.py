"""The in-memory DuckDB connections that build the store's tables, held to a memory limit.

`connect(settings)`: UTC, `memory_limit` = FLYWHEEL_DUCKDB_MEMORY (default 4GB), and a spill
folder of its own in the store (under `<store>/_tmp/duckdb`, removed with the connection), so that
a large day (10M events) spills to disk instead of taking the machine's memory. A store on an object
store spills to a local temporary folder instead (DuckDB spills to local disk only), and the
connection is given the store's filesystem (`objectstore.register`), so SQL reads and writes
`s3://` paths (`Layout` paths through `objectstore.url`); the variable `flywheel_store` holds the
store's root URL (what the analysts' views read through `getvariable`).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref

import duckdb

from flywheel.config import Settings
from flywheel.objectstore import is_remote, register, url
from flywheel.store import Layout


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection for building a day of `settings`' store (see the module docstring)."""
    store = Layout(settings.store).root
    if is_remote(store):
        spill = tempfile.mkdtemp(prefix="flywheel-duckdb-")  # local: DuckDB cannot spill to an object store
    else:
        root = store / "_tmp" / "duckdb"
        root.mkdir(parents=True, exist_ok=True)
        spill = tempfile.mkdtemp(dir=root)  # one folder per connection: processes building days at once never share spill files
    con = duckdb.connect(":memory:")
    register(con, store)
    con.execute("SET VARIABLE flywheel_store = ?", [url(store)])  # the root the analysts' views read
    weakref.finalize(con, shutil.rmtree, spill, True)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET memory_limit = ?", [settings.duckdb_memory])  # checked by Settings.from_env
    con.execute("SET temp_directory = ?", [spill])
    return con
