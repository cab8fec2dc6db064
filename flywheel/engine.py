"""The in-memory DuckDB connections that build the store's tables, held to a memory limit.

`connect(settings)`: UTC, `memory_limit` = FLYWHEEL_DUCKDB_MEMORY (default 4GB), and a spill
folder of its own in the store (under `<store>/_tmp/duckdb`, removed with the connection), so that
a large day (10M events) spills to disk instead of taking the machine's memory.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref

import duckdb

from flywheel.config import Settings
from flywheel.store import Layout


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection for building a day of `settings`' store (see the module docstring)."""
    root = Layout(settings.store).root / "_tmp" / "duckdb"
    root.mkdir(parents=True, exist_ok=True)
    spill = tempfile.mkdtemp(dir=root)  # one folder per connection: processes building days at once never share spill files
    con = duckdb.connect(":memory:")
    weakref.finalize(con, shutil.rmtree, spill, True)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET memory_limit = ?", [settings.duckdb_memory])  # checked by Settings.from_env
    con.execute("SET temp_directory = ?", [spill])
    return con
