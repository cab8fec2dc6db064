"""The SQL files flywheel runs, and the one way to fill a file's slots: `render`.

Every statement longer than a line lives in a `.sql` file of this package, read with
`load_sql(name)` (package data through importlib.resources, so an installed wheel finds them).
Values are always bound as parameters (`?` / `$name`), never written into the text. The only
text written into a statement is a `{name}` slot: an identifier or a relation chosen by code,
never by input (the id column of a record kind, a `read_parquet(...)` over the store). `render`
fills the slots and fails on a slot left unfilled and on a slot given that the text does not
have, so a renamed slot or a typo stops the run instead of silently leaving a statement as it
was. `{}` (DuckDB's `format` placeholder) and `{'key': value}` (a struct literal) are not slots.
A slot in a `--` comment is filled too: comments name slots without braces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib.resources import files

# A slot: `{` + a name (letters, digits, `_`, and `:/*.=-` for the catalog's `{table:<path>}` and
# `{glob:<pattern>}` forms) + `}`.
SLOT = re.compile(r"\{([A-Za-z_][\w:/*.=-]*)\}")


class SlotError(ValueError):
    """A SQL text rendered with a slot left unfilled or with a slot it does not have."""


@cache
def load_sql(name: str) -> str:
    """The text of `<name>.sql` in this package, slots unfilled (see `render`, `sql_file`)."""
    return files(__package__).joinpath(f"{name}.sql").read_text()


def slots(sql: str) -> set[str]:
    """The names of the `{name}` slots in `sql`."""
    return set(SLOT.findall(sql))


def render(sql: str, values: Mapping[str, str]) -> str:
    """`sql` with each `{name}` slot replaced by `values[name]`.

    Raises `SlotError` when a slot of `sql` has no value or a value names no slot of `sql`.
    The values are inserted as they are (they are code-chosen SQL text, not input).
    """
    found = slots(sql)
    missing, unknown = found - values.keys(), values.keys() - found
    if missing or unknown:
        raise SlotError("SQL rendered with " + "; ".join(
            part for part in (missing and f"slots left unfilled: {sorted(missing)}",
                              unknown and f"unknown slots given: {sorted(unknown)}") if part))
    return SLOT.sub(lambda m: values[m.group(1)], sql)


def sql_file(name: str, /, **values: str) -> str:
    """`<name>.sql` rendered with `values` (see `render`); a file without slots takes none."""
    return render(load_sql(name), values)
