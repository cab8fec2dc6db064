"""The SQL files flywheel runs, kept next to this module; `load_sql(name)` returns one's text.

Values are always bound as parameters (`?` / `$name`); the only text substituted into a file is
an identifier chosen by code (never by input), written `{id}`-style in the file.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_HERE = Path(__file__).parent


@cache
def load_sql(name: str) -> str:
    """The text of `<name>.sql` in this package."""
    return (_HERE / f"{name}.sql").read_text()
