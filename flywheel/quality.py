"""Data-quality gates: the Great Expectations suites of the stored tables, run on one partition.

The suites are hand-written GX 1.x suite JSON files in `flywheel/expectations/` (`events.json`,
`interventions.json`, `quarantine.json`), package data read with `importlib.resources`, so an
installed flywheel (not only a checkout) has them. Every expectation's `meta` carries a
`severity` ("error": blocking, the data would poison the signals; "warn": suspicious, reported
only) and a `why` sentence; the GX-native top-level `severity` field mirrors it ("critical" /
"warning") so GX's own renderers agree. `validate` first screens a polars frame (`screen`:
every expectation of the shipped suites evaluated in polars with GX's semantics, a few
milliseconds for 100k events); when everything passes there, that is the result. When an
expectation fails, or the screen cannot evaluate one (another expectation type or kwarg, a
missing column), GX validates the frame and its result is returned: every reported failure is
GX's. GX gets the frame as an in-memory pandas frame (GX's SQL path over DuckDB does not work,
and GX has no polars datasource) through one ephemeral GX context per process, a pandas
datasource and a whole-dataframe batch, with progress bars and GX logging muted.
tests/test_quality.py checks the screen against GX, outcome by outcome, on every case it has.

Two things are prepared in polars before the screen or GX sees the frame, both declared in the suite's
`meta.derived_columns` / `meta.notes`:

* helper columns GX cannot express itself: `occurred_at_utc_date` (the UTC date of occurred_at,
  compared with event_date by a pair expectation), `tool_call_unknown_status` (the first tool call
  status outside the suite's value set, null when all are valid) and `tool_call_unnamed_count`;
* NaN in float columns becomes -inf, because pandas treats NaN as null and a NaN confidence or
  latency would otherwise pass every range check as "missing".

Only the columns some expectation reads are converted to pandas; the others are handed over as
cheap all-null stand-ins, which keeps the column-set expectation truthful (it only looks at
names) while skipping the costly conversion of `tool_calls` and the free-text columns.

GX (about 3.5 s of CPU to import, more than validating a 100k-event day) and pandas are imported
only when GX runs, so neither importing this module nor a passing night imports them.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from flywheel.objectstore import polars_options, url

if TYPE_CHECKING:
    import pandas as pd

EXPECTATIONS_DIR: Traversable = files("flywheel") / "expectations"
SUITE_NAMES: tuple[str, ...] = ("events", "interventions", "quarantine")

# Our severities, and the GX-native FailureSeverity each must be written with in the suite JSON.
SEVERITIES: dict[str, str] = {"error": "critical", "warn": "warning"}

# How many unexpected values an outcome keeps as examples.
MAX_EXAMPLES = 5

# The meta key under which `validate` records an expectation's position in its suite; GX returns
# results grouped by metric, not in suite order.
_POSITION_KEY = "_flywheel_position"

# Expectation kwargs that name a column the expectation reads.
_COLUMN_KWARGS: tuple[str, ...] = ("column", "column_A", "column_B")
_COLUMN_LIST_KWARGS: tuple[str, ...] = ("column_list",)


class SuiteError(ValueError):
    """A suite file is malformed: bad JSON shape, unknown severity, no `why`, unknown helper column."""


@dataclass(frozen=True)
class ExpectationOutcome:
    """The result of one expectation of a suite on one frame.

    `column` is the column the expectation reads ("A, B" for a pair expectation, None for a
    table-level one). `unexpected_count` counts the offending rows (for the column-set
    expectation: the missing columns); `unexpected_examples` holds up to MAX_EXAMPLES offending
    values (or the missing column names, or the error GX raised).
    """

    expectation: str
    column: str | None
    severity: str
    success: bool
    unexpected_count: int
    unexpected_examples: list = field(default_factory=list)
    why: str = ""


@dataclass(frozen=True)
class SuiteResult:
    """Every outcome of one suite on one frame, in suite order."""

    suite: str
    rows: int
    outcomes: tuple[ExpectationOutcome, ...]

    @property
    def passed(self) -> bool:
        """True when no error-severity expectation failed (warnings do not block)."""
        return not self.failed_errors

    @property
    def failed_errors(self) -> tuple[ExpectationOutcome, ...]:
        """The failed blocking (severity "error") outcomes."""
        return tuple(o for o in self.outcomes if o.severity == "error" and not o.success)

    @property
    def failed_warnings(self) -> tuple[ExpectationOutcome, ...]:
        """The failed non-blocking (severity "warn") outcomes."""
        return tuple(o for o in self.outcomes if o.severity == "warn" and not o.success)

    def outcome(self, expectation: str, column: str | None = None, severity: str | None = None) -> ExpectationOutcome:
        """The single outcome of `expectation` on `column` (of `severity`, when a column has an
        error and a warn expectation of the same type); KeyError when there is none or several."""
        found = [
            o for o in self.outcomes
            if o.expectation == expectation and o.column == column and severity in (None, o.severity)
        ]
        if len(found) != 1:
            raise KeyError(f"{len(found)} outcomes of {expectation} on {column!r} in suite {self.suite}")
        return found[0]

    def to_markdown(self) -> str:
        """A Markdown summary and table of every outcome, failures first, for Dagster metadata."""
        verdict = "passed" if self.passed else "FAILED"
        lines = [
            f"**{self.suite}**: {verdict} on {self.rows} rows; {len(self.failed_errors)} blocking "
            f"failure(s), {len(self.failed_warnings)} warning(s), {len(self.outcomes)} expectations.",
            "",
            "| result | severity | expectation | column | unexpected | examples | why |",
            "|---|---|---|---|---:|---|---|",
        ]
        ordered = sorted(self.outcomes, key=lambda o: (o.success, o.severity != "error"))
        for o in ordered:
            result = "pass" if o.success else ("**FAIL**" if o.severity == "error" else "warn")
            examples = ", ".join(_md_cell(repr(x)) for x in o.unexpected_examples)
            lines.append(
                f"| {result} | {o.severity} | `{o.expectation}` | {_md_cell(o.column or '')} | "
                f"{o.unexpected_count} | {examples} | {_md_cell(o.why)} |"
            )
        return "\n".join(lines)


def _md_cell(text: str) -> str:
    """Text made safe for one Markdown table cell."""
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 200 else text[:197] + "..."


# --------------------------------------------------------------------------------------------
# Suites


def _suite_path(name: str, folder: Path | None) -> Path | Traversable:
    """The JSON file of suite `name` in `folder` (default: the package's expectations/)."""
    return (folder or EXPECTATIONS_DIR) / f"{name}.json"


def load_suite(name: str, folder: Path | None = None) -> dict[str, Any]:
    """The parsed suite JSON `<folder>/<name>.json`, checked for flywheel's conventions.

    `folder` defaults to the package's `flywheel/expectations` (`EXPECTATIONS_DIR`). Raises
    SuiteError when an expectation lacks a known `meta.severity`, a `why`, or a GX-native
    `severity` that agrees with it, or names a helper column this module cannot derive.
    """
    path = _suite_path(name, folder)
    suite = json.loads(path.read_text(encoding="utf-8"))
    _check_suite(suite, path)
    return suite


def _check_suite(suite: dict[str, Any], path: Path | Traversable) -> None:
    """Raise SuiteError unless `suite` follows the conventions described in `load_suite`."""
    if not isinstance(suite.get("name"), str) or not isinstance(suite.get("expectations"), list):
        raise SuiteError(f"{path}: a suite needs a name and a list of expectations")
    for i, exp in enumerate(suite["expectations"]):
        where = f"{path}: expectation {i} ({exp.get('type')})"
        meta = exp.get("meta") or {}
        severity = meta.get("severity")
        if severity not in SEVERITIES:
            raise SuiteError(f"{where}: meta.severity must be one of {sorted(SEVERITIES)}, got {severity!r}")
        if not str(meta.get("why", "")).strip():
            raise SuiteError(f"{where}: meta.why is missing")
        native = exp.get("severity", SEVERITIES[severity])
        if native != SEVERITIES[severity]:
            raise SuiteError(f"{where}: GX severity {native!r} disagrees with meta.severity {severity!r}")
    for column in (suite.get("meta") or {}).get("derived_columns") or {}:
        if column not in _DERIVATIONS:
            raise SuiteError(f"{path}: no derivation for helper column {column!r}")


def suite_value_sets(name: str, folder: Path | None = None) -> dict[str, set[str]]:
    """Column -> allowed values, from every unconditional `expect_column_values_to_be_in_set` of
    suite `name`, plus the value sets of helper columns (keyed by their `value_set_of`, e.g.
    "tool_calls[].status"). The test suite checks these against the enums of contracts.py.
    """
    suite = load_suite(name, folder)
    out: dict[str, set[str]] = {}
    for exp in suite["expectations"]:
        kwargs = exp.get("kwargs", {})
        if exp["type"] == "expect_column_values_to_be_in_set" and not kwargs.get("row_condition"):
            out.setdefault(kwargs["column"], set()).update(kwargs["value_set"])
    for column, spec in ((suite.get("meta") or {}).get("derived_columns") or {}).items():
        if "value_set" in spec:
            out.setdefault(spec.get("value_set_of", column), set()).update(spec["value_set"])
    return out


# --------------------------------------------------------------------------------------------
# Helper columns


def _occurred_at_utc_date(frame: pl.DataFrame, spec: dict[str, Any]) -> pl.Expr:
    """The UTC calendar date of occurred_at (a naive timestamp is taken to be UTC)."""
    col = pl.col("occurred_at")
    dtype = frame.schema["occurred_at"]
    if isinstance(dtype, pl.Datetime):
        col = col.dt.replace_time_zone("UTC") if dtype.time_zone is None else col.dt.convert_time_zone("UTC")
    return col.dt.date()


def _tool_call_unknown_status(frame: pl.DataFrame, spec: dict[str, Any]) -> pl.Expr:
    """Per row, the first tool call status outside spec["value_set"] ('<missing>' for null or
    empty), null when all are valid or there are no tool calls."""
    status = pl.element().struct.field("status").fill_null("")
    status = pl.when(status == "").then(pl.lit("<missing>")).otherwise(status)
    allowed = list(spec["value_set"])
    return pl.col("tool_calls").list.eval(status.filter(~status.is_in(allowed))).list.first()


def _tool_call_unnamed_count(frame: pl.DataFrame, spec: dict[str, Any]) -> pl.Expr:
    """Per row, how many tool calls have a null or empty name (0 without tool calls)."""
    unnamed = pl.element().struct.field("name").fill_null("") == ""
    return pl.col("tool_calls").list.eval(unnamed).list.sum().fill_null(0).cast(pl.Int64)


_DERIVATIONS: dict[str, Callable[[pl.DataFrame, dict[str, Any]], pl.Expr]] = {
    "occurred_at_utc_date": _occurred_at_utc_date,
    "tool_call_unknown_status": _tool_call_unknown_status,
    "tool_call_unnamed_count": _tool_call_unnamed_count,
}


def prepare(frame: pl.DataFrame, suite: dict[str, Any]) -> pl.DataFrame:
    """`frame` as GX should see it for `suite`: helper columns added (when their source columns
    exist; otherwise the expectations on them fail as "column not found"), NaN turned into -inf,
    and columns no expectation reads replaced by all-null stand-ins of the same name.
    """
    derived = (suite.get("meta") or {}).get("derived_columns") or {}
    exprs = [
        _DERIVATIONS[name](frame, spec).alias(name)
        for name, spec in derived.items()
        if all(src in frame.columns for src in spec.get("from", []))
    ]
    if exprs:
        frame = frame.with_columns(exprs)
    read = _columns_read(suite)
    nullness = _nullness_only_columns(suite)
    replaced: list[pl.Expr] = []
    for name, dtype in frame.schema.items():
        if name not in read:
            replaced.append(pl.lit(None, dtype=pl.Null).alias(name))
        elif name in nullness and dtype == pl.String:
            # only null-checked: an empty string where there is a value (long free text costs
            # GX a copy per row-condition filter, and to_pandas a conversion)
            replaced.append(pl.when(pl.col(name).is_null()).then(pl.lit(None, pl.String)).otherwise(pl.lit("")).alias(name))
        elif dtype.is_float():
            replaced.append(pl.col(name).fill_nan(-math.inf))
    return frame.with_columns(replaced) if replaced else frame


# the unexpected values of a not-null expectation are nulls, whatever the other values are
_NULLNESS_EXPECTATIONS = ("expect_column_values_to_not_be_null",)


def _nullness_only_columns(suite: dict[str, Any]) -> set[str]:
    """Columns that every expectation reading them only checks for null (as their `column`; never
    in a pair, a list or a row condition): their values can be stood in for."""
    checked: set[str] = set()
    other: set[str] = set()
    for exp in suite["expectations"]:
        kwargs = exp.get("kwargs", {})
        column = kwargs.get("column")
        if exp["type"] in _NULLNESS_EXPECTATIONS and isinstance(column, str):
            checked.add(column)
        else:
            other.update(kwargs[k] for k in _COLUMN_KWARGS if isinstance(kwargs.get(k), str))
        for k in _COLUMN_LIST_KWARGS:
            other.update(kwargs.get(k) or [])
        other.update(_condition_columns(kwargs.get("row_condition")))
    return checked - other


def _columns_read(suite: dict[str, Any]) -> set[str]:
    """Every column some expectation of `suite` reads (columns, pairs, lists, row conditions)."""
    read: set[str] = set()
    for exp in suite["expectations"]:
        kwargs = exp.get("kwargs", {})
        read.update(kwargs[k] for k in _COLUMN_KWARGS if isinstance(kwargs.get(k), str))
        for k in _COLUMN_LIST_KWARGS:
            read.update(kwargs.get(k) or [])
        read.update(_condition_columns(kwargs.get("row_condition")))
    return read


def _condition_columns(condition: Any) -> set[str]:
    """The columns a GX row_condition (a condition dict, possibly and/or-nested) reads.

    A legacy string condition (deprecated since GX 1.9) is refused with SuiteError.
    """
    if condition is None:
        return set()
    if isinstance(condition, str):
        raise SuiteError("string row_conditions are deprecated in GX 1.9+; write a condition object")
    out: set[str] = set()
    if isinstance(condition, dict):
        column = condition.get("column")
        if isinstance(column, dict) and isinstance(column.get("name"), str):
            out.add(column["name"])
        for sub in condition.get("conditions") or []:
            out |= _condition_columns(sub)
    return out


# --------------------------------------------------------------------------------------------
# The screen: the suites' expectations evaluated in polars, with GX's semantics


# Expectation type -> the kwargs the screen evaluates exactly as GX does; an expectation with any
# other kwarg (or of another type) is left to GX.
_MAP_KWARGS = {"column", "mostly", "row_condition"}
_SCREEN_KWARGS: dict[str, set[str]] = {
    "expect_table_columns_to_match_set": {"column_set", "exact_match"},
    "expect_column_values_to_not_be_null": _MAP_KWARGS,
    "expect_column_values_to_be_null": _MAP_KWARGS,
    "expect_column_value_lengths_to_be_between": _MAP_KWARGS | {"min_value", "max_value"},
    "expect_column_values_to_be_unique": _MAP_KWARGS,
    "expect_column_values_to_be_in_set": _MAP_KWARGS | {"value_set"},
    "expect_column_values_to_not_be_in_set": _MAP_KWARGS | {"value_set"},
    "expect_column_values_to_be_between": _MAP_KWARGS | {"min_value", "max_value", "strict_min", "strict_max"},
    "expect_column_pair_values_to_be_equal": {"column_A", "column_B", "ignore_row_if", "mostly", "row_condition"},
    "expect_column_pair_values_a_to_be_greater_than_b": {"column_A", "column_B", "or_equal", "ignore_row_if", "mostly",
                                                         "row_condition"},
}


class _Undecided(Exception):
    """The screen cannot evaluate an expectation exactly as GX would: GX decides."""


def screen(frame: pl.DataFrame, suite: dict[str, Any]) -> tuple[ExpectationOutcome, ...] | None:
    """Every expectation of `suite` evaluated in polars on the prepared `frame` (`prepare`), with
    GX's semantics (nulls ignored except by the null checks, `mostly` as GX computes it, a pair's
    `ignore_row_if`, a row condition filtering as pandas' query does, unexpected values as GX
    reports them after the pandas conversion); None when some expectation is of a type, has a
    kwarg, reads a missing column or a column type the screen does not evaluate (GX decides those).

    `validate` uses it as the cheap path: only a frame on which every expectation passes here is
    not handed to GX. tests/test_quality.py checks it against GX on every case of the suites."""
    try:
        return tuple(_screen_one(frame, exp) for exp in suite["expectations"])
    except _Undecided:
        return None


def _screen_one(frame: pl.DataFrame, exp: dict[str, Any]) -> ExpectationOutcome:
    kind, kwargs = exp["type"], exp.get("kwargs", {})
    allowed = _SCREEN_KWARGS.get(kind)
    if allowed is None or set(kwargs) - allowed:
        raise _Undecided(kind)
    mostly = kwargs.get("mostly", 1.0)
    if isinstance(mostly, bool) or not isinstance(mostly, (int, float)):
        raise _Undecided("mostly")
    if kind == "expect_table_columns_to_match_set":
        wanted = kwargs.get("column_set")
        if not isinstance(wanted, list):
            raise _Undecided("column_set")
        missing = [c for c in wanted if c not in frame.columns]
        extra = [c for c in frame.columns if c not in wanted] if kwargs.get("exact_match", True) else []
        if missing or extra:
            raise _Undecided("columns")  # a failure: GX reports it
        return _screened(exp, True, 0, [])
    rows = frame
    if kwargs.get("row_condition") is not None:
        rows = frame.filter(_condition(kwargs["row_condition"], frame))
    total = rows.height
    if kind.startswith("expect_column_pair_values"):
        return _screen_pair(frame, rows, exp, kind, kwargs, total, float(mostly))
    column = kwargs.get("column")
    if not isinstance(column, str) or column not in frame.columns:
        raise _Undecided("column")
    values = rows[column]
    dtype = values.dtype
    if kind == "expect_column_values_to_not_be_null":
        bad = values.is_null()
        considered = total
    elif kind == "expect_column_values_to_be_null":
        bad = values.is_not_null()
        considered = total
    else:
        if dtype == pl.Null:
            raise _Undecided("all-null column")
        bad = values.is_not_null() & _map_bad(kind, kwargs, values)
        considered = total - values.null_count()
    unexpected = int(bad.sum())
    if total == 0 or considered == 0:
        success = True
    else:
        success = _mostly_success(considered, unexpected, float(mostly))
    examples = [_example(v, frame[column]) for v in values.filter(bad).head(MAX_EXAMPLES).to_list()] if unexpected else []
    return _screened(exp, success, unexpected, examples)


def _map_bad(kind: str, kwargs: dict[str, Any], values: pl.Series) -> pl.Series:
    """The rows of non-null `values` that break a column-map expectation (nulls: anything)."""
    dtype = values.dtype
    if kind == "expect_column_value_lengths_to_be_between":
        if dtype != pl.String:
            raise _Undecided("lengths of a non-string")
        lengths = values.str.len_chars()
        return _outside(lengths, kwargs.get("min_value"), kwargs.get("max_value"), False, False)
    if kind == "expect_column_values_to_be_unique":
        if not (dtype == pl.String or dtype.is_integer()):
            raise _Undecided("unique of this type")
        return values.is_duplicated()  # nulls too, but the caller keeps non-null rows only
    if kind in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set"):
        value_set = kwargs.get("value_set")
        if dtype != pl.String or not isinstance(value_set, list) or not all(isinstance(v, str) for v in value_set):
            raise _Undecided("value set")
        inside = values.is_in(value_set)
        return ~inside if kind == "expect_column_values_to_be_in_set" else inside
    if kind == "expect_column_values_to_be_between":
        if not dtype.is_numeric():
            raise _Undecided("between of a non-number")
        return _outside(values, kwargs.get("min_value"), kwargs.get("max_value"),
                        bool(kwargs.get("strict_min", False)), bool(kwargs.get("strict_max", False)))
    raise _Undecided(kind)


def _outside(values: pl.Series, low: Any, high: Any, strict_low: bool, strict_high: bool) -> pl.Series:
    """Values below `low` / above `high` (at the bound too when strict); a bound may be None."""
    for bound in (low, high):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))):
            raise _Undecided("bound")
    if low is None and high is None:
        raise _Undecided("no bound")  # GX refuses such an expectation
    bad = pl.Series([False] * values.len(), dtype=pl.Boolean)
    if low is not None:
        bad = bad | ((values <= low) if strict_low else (values < low)).fill_null(False)
    if high is not None:
        bad = bad | ((values >= high) if strict_high else (values > high)).fill_null(False)
    return bad


def _screen_pair(frame: pl.DataFrame, rows: pl.DataFrame, exp: dict[str, Any], kind: str, kwargs: dict[str, Any],
                 total: int, mostly: float) -> ExpectationOutcome:
    a_name, b_name = kwargs.get("column_A"), kwargs.get("column_B")
    if not (isinstance(a_name, str) and isinstance(b_name, str) and a_name in frame.columns and b_name in frame.columns):
        raise _Undecided("pair columns")
    a, b = rows[a_name], rows[b_name]
    if a.dtype != b.dtype or not (a.dtype == pl.Date or a.dtype == pl.String or a.dtype.is_integer()):
        raise _Undecided("pair types")
    ignore = kwargs.get("ignore_row_if", "both_values_are_missing")
    if ignore == "both_values_are_missing":
        kept = a.is_not_null() | b.is_not_null()
    elif ignore == "either_value_is_missing":
        kept = a.is_not_null() & b.is_not_null()
    else:
        raise _Undecided("ignore_row_if")
    if kind == "expect_column_pair_values_to_be_equal":
        good = a.eq_missing(b)
    elif a.dtype == pl.String:
        raise _Undecided("ordering of text")
    else:
        good = ((a >= b) if kwargs.get("or_equal") else (a > b)).fill_null(False)
    bad = kept & ~good
    considered, unexpected = int(kept.sum()), int(bad.sum())
    success = True if total == 0 or considered == 0 else _mostly_success(considered, unexpected, mostly)
    examples = [[_example(x, frame[a_name]), _example(y, frame[b_name])]
                for x, y in zip(a.filter(bad).head(MAX_EXAMPLES).to_list(), b.filter(bad).head(MAX_EXAMPLES).to_list())]
    return _screened(exp, success, unexpected, examples)


def _condition(condition: Any, frame: pl.DataFrame) -> pl.Expr:
    """A GX row condition as a polars filter that keeps the rows pandas' `query` keeps (a null
    is unequal to every value, so `!=` keeps it)."""
    if not (isinstance(condition, dict) and condition.get("type") == "comparison"):
        raise _Undecided("row condition")
    column = (condition.get("column") or {}).get("name")
    value, op = condition.get("parameter"), condition.get("operator")
    if not isinstance(column, str) or column not in frame.columns or frame.schema[column] != pl.String \
            or not isinstance(value, str) or set(condition) - {"type", "column", "operator", "parameter"}:
        raise _Undecided("row condition")
    if op == "==":
        return pl.col(column).eq_missing(value)
    if op == "!=":
        return pl.col(column).ne_missing(value)
    raise _Undecided("row condition operator")


def _mostly_success(considered: int, unexpected: int, mostly: float) -> bool:
    """GX's `_mostly_success`, the same float arithmetic."""
    return (float(considered) - float(unexpected)) / float(considered) >= mostly


def _example(value: Any, column: pl.Series) -> Any:
    """An unexpected value of `column` as GX reports it after `to_pandas` and `_plain`: dates as
    midnight timestamps, integers of a column with nulls as floats (pandas has no null integer)."""
    dtype = column.dtype
    if value is None:
        return None
    if dtype == pl.Date:
        return datetime(value.year, value.month, value.day).isoformat()
    if dtype.is_integer():
        return float(value) if column.null_count() else int(value)
    if dtype.is_float():
        return None if math.isnan(value) else float(value)
    if dtype == pl.String:
        return value
    raise _Undecided("example of this type")


def _screened(exp: dict[str, Any], success: bool, unexpected: int, examples: list) -> ExpectationOutcome:
    meta = exp.get("meta") or {}
    return ExpectationOutcome(expectation=exp["type"], column=_column_label(exp.get("kwargs", {})),
                              severity=meta["severity"], success=success, unexpected_count=unexpected,
                              unexpected_examples=examples, why=str(meta.get("why", "")))


# --------------------------------------------------------------------------------------------
# Great Expectations


class _Gx:
    """The per-process ephemeral GX context, its pandas datasource and one batch definition per
    suite, created on first use; a lock serialises validations (GX contexts are not thread-safe)."""

    _lock = threading.Lock()
    _instance: _Gx | None = None

    def __init__(self) -> None:
        logging.getLogger("great_expectations").setLevel(logging.CRITICAL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            self.gx = gx
            self.context = gx.get_context(mode="ephemeral")
            self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
            self.datasource = self.context.data_sources.add_pandas("flywheel_quality")
            # GX fingerprints every pandas batch under HASH_THRESHOLD bytes by hashing all of it
            # (pd.util.hash_pandas_object: half of a 1M-event validation); the fingerprint is a
            # batch marker nothing here reads, so no batch is fingerprinted.
            from great_expectations.execution_engine import pandas_execution_engine

            pandas_execution_engine.HASH_THRESHOLD = 0
        self.batch_definitions: dict[str, Any] = {}
        self.suites: dict[tuple[str, str], Any] = {}

    @classmethod
    def get(cls) -> _Gx:
        """The shared instance (call with the lock held)."""
        if cls._instance is None:
            cls._instance = _Gx()
        return cls._instance

    def batch_definition(self, asset_name: str) -> Any:
        """The whole-dataframe batch definition of the dataframe asset `asset_name`."""
        if asset_name not in self.batch_definitions:
            asset = self.datasource.add_dataframe_asset(asset_name)
            self.batch_definitions[asset_name] = asset.add_batch_definition_whole_dataframe("whole")
        return self.batch_definitions[asset_name]

    def run(self, asset_name: str, gx_suite: Any, pdf: pd.DataFrame) -> Any:
        """Validate `pdf` as one whole-dataframe batch of asset `asset_name` against `gx_suite`.

        This is what `Batch.validate` and `ValidationDefinition.run` both do inside, through
        GX's V1 Validator, minus their costs: `get_batch()` followed by `Batch.validate()` loads
        the batch twice, and GX fingerprints every pandas batch under 1 GB by hashing all of it
        (about 0.6 s per load for 1 M events); `ValidationDefinition.run` needs the suite saved
        in the context and keeps every result in the context's store, which grows in a
        long-running process.
        """
        from great_expectations.validator.v1_validator import Validator

        validator = Validator(
            batch_definition=self.batch_definition(asset_name),
            batch_parameters={"dataframe": pdf},
            result_format={"result_format": "BASIC", "partial_unexpected_count": MAX_EXAMPLES},
        )
        return validator.validate_expectation_suite(gx_suite)

    def expectation_suite(self, suite: dict[str, Any]) -> Any:
        """A GX ExpectationSuite built from the suite dict (cached by content), each expectation's
        meta stamped with its position; raises SuiteError if GX refuses any expectation (GX only
        logs and drops an invalid one)."""
        key = (suite["name"], json.dumps(suite, sort_keys=True))
        if key not in self.suites:
            expectations = []
            for i, exp in enumerate(suite["expectations"]):
                exp = dict(exp)
                exp["meta"] = {**(exp.get("meta") or {}), _POSITION_KEY: i}
                expectations.append(exp)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gx_suite = self.gx.ExpectationSuite(name=suite["name"], expectations=expectations, meta=copy.deepcopy(suite.get("meta")))
            if len(gx_suite.expectations) != len(expectations):
                built = {e.meta.get(_POSITION_KEY) for e in gx_suite.expectations}
                bad = [f"{i} ({e['type']})" for i, e in enumerate(suite["expectations"]) if i not in built]
                raise SuiteError(f"suite {suite['name']}: GX rejected expectation(s) {', '.join(bad)}")
            self.suites[key] = gx_suite
        return self.suites[key]


def read_for_suite(paths: list[Path], suite_name: str, folder: Path | None = None) -> pl.DataFrame:
    """The stored Parquet files `paths` read for suite `suite_name`: only what its expectations
    (and its derived columns) read, with columns it only checks for null read as '' / null, and
    every other column an all-null stand-in. `validate` on it gives the same result as on the
    whole files, at a fraction of the memory (a 10M-event day's texts never load)."""
    if not paths:
        return pl.DataFrame()
    suite = load_suite(suite_name, folder)
    frame = pl.scan_parquet([url(p) for p in paths], storage_options=polars_options(paths[0]))
    schema = frame.collect_schema()
    derived = (suite.get("meta") or {}).get("derived_columns") or {}
    sources = {src for spec in derived.values() for src in spec.get("from", [])}
    read, nullness = _columns_read(suite), _nullness_only_columns(suite)
    exprs = []
    for name, dtype in schema.items():
        if name in sources or (name in read and not (name in nullness and dtype == pl.String)):
            exprs.append(pl.col(name))
        elif name in read:
            exprs.append(pl.when(pl.col(name).is_null()).then(pl.lit(None, pl.String)).otherwise(pl.lit("")).alias(name))
        else:
            exprs.append(pl.lit(None, dtype=pl.Null).alias(name))
    return frame.select(exprs).collect(engine="streaming")


def validate(frame: pl.DataFrame, suite_name: str, folder: Path | None = None, engine: str = "auto") -> SuiteResult:
    """Run suite `suite_name` (from `folder`, default the package's expectations) on one partition.

    The frame is prepared (see `prepare`). With `engine="auto"` it is first screened in polars
    (`screen`: the same expectations, GX's semantics); when every expectation passes there, that
    is the result, and GX is not imported at all. When any expectation fails or the screen cannot
    decide one, GX validates the frame (converted to pandas, one whole-dataframe batch) and its
    result is the one returned, so every reported failure is GX's. `engine="gx"` always runs GX.
    An empty frame with the table's columns passes. An expectation whose metric raised inside GX
    is reported as failed, with the error message as its example.
    """
    if engine not in ("auto", "gx"):
        raise ValueError(f"engine must be 'auto' or 'gx', got {engine!r}")
    suite = load_suite(suite_name, folder)
    prepared = prepare(frame, suite)
    if engine == "auto":
        screened = screen(prepared, suite)
        if screened is not None and all(o.success for o in screened):
            return SuiteResult(suite=suite.get("name", suite_name), rows=frame.height, outcomes=screened)
    pdf = prepared.to_pandas()
    with _Gx._lock:
        gxs = _Gx.get()
        gx_suite = gxs.expectation_suite(suite)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = gxs.run(suite_name, gx_suite, pdf)
    by_position = {r.expectation_config.meta[_POSITION_KEY]: r for r in run.results}
    if sorted(by_position) != list(range(len(suite["expectations"]))):
        raise RuntimeError(f"suite {suite_name}: GX returned {len(by_position)} results for {len(suite['expectations'])} expectations")
    outcomes = tuple(_outcome(exp, by_position[i]) for i, exp in enumerate(suite["expectations"]))
    return SuiteResult(suite=suite.get("name", suite_name), rows=frame.height, outcomes=outcomes)


def _outcome(exp: dict[str, Any], result: Any) -> ExpectationOutcome:
    """An ExpectationOutcome from the suite entry `exp` and its GX ExpectationValidationResult."""
    kwargs = exp.get("kwargs", {})
    meta = exp.get("meta") or {}
    details = result.result or {}
    error = _exception_message(result.exception_info)
    if error is not None:
        count, examples = 0, [f"GX error: {error}"]
    elif exp["type"] in ("expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list"):
        mismatched = (details.get("details") or {}).get("mismatched") or {}
        missing = list(mismatched.get("missing") or [])
        extra = list(mismatched.get("unexpected") or []) if kwargs.get("exact_match", True) else []
        count, examples = len(missing) + len(extra), (missing + extra)[:MAX_EXAMPLES]
    elif "unexpected_count" in details:
        count = int(details["unexpected_count"] or 0)
        examples = [_plain(v) for v in (details.get("partial_unexpected_list") or [])[:MAX_EXAMPLES]]
    else:
        observed = details.get("observed_value")
        count, examples = 0, ([] if result.success else [_plain(observed)])
    return ExpectationOutcome(
        expectation=exp["type"],
        column=_column_label(kwargs),
        severity=meta["severity"],
        success=bool(result.success) and error is None,
        unexpected_count=count,
        unexpected_examples=examples,
        why=str(meta.get("why", "")),
    )


def _column_label(kwargs: dict[str, Any]) -> str | None:
    """The column(s) an expectation reads, as one label: "c", "A, B", or None for the table."""
    if isinstance(kwargs.get("column"), str):
        return kwargs["column"]
    if "column_A" in kwargs:
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    if kwargs.get("column_list"):
        return ", ".join(kwargs["column_list"])
    return None


def _exception_message(info: Any) -> str | None:
    """The message of the exception GX caught while validating, if any (GX 1.x nests the info
    under metric ids, or puts it at the top level)."""
    if not isinstance(info, dict) or not info:
        return None
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info["raised_exception"] else None
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _plain(value: Any) -> Any:
    """`value` as a plain, JSON-friendly Python value (numpy scalars, NaN/NaT/NA as None,
    timestamps and dates as ISO text, tuples as lists)."""
    import pandas as pd

    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (datetime, date, pd.Timestamp)):
        return value.isoformat()
    return value
