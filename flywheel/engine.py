"""The in-memory DuckDB connections that build a day's tables, held to a memory limit.

`connect(settings)`: UTC, `memory_limit` = FLYWHEEL_DUCKDB_MEMORY (default 4GB), and a spill
folder in the store (`<store>/_tmp/duckdb`), so that a large day (10M events hold ~10 GB of text)
spills to disk instead of taking the machine's memory. DuckDB removes its spill files on close.
"""

from __future__ import annotations

import duckdb

from flywheel.config import Settings
from flywheel.store import Layout


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection for building a day of `settings`' store (see the module docstring)."""
    spill = Layout(settings.store).root / "_tmp" / "duckdb"
    spill.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{settings.duckdb_memory}'")  # checked by Settings.from_env
    con.execute(f"SET temp_directory = '{str(spill).replace(chr(39), chr(39) * 2)}'")
    return con
