"""The outcome marts: daily figures per scenario x model x prompt version x autonomy level, and
7- and 28-day rolling figures per scenario summed from the daily counts, each rate with its 95%
Wilson interval (`<rate>`, `<rate>_lo`, `<rate>_hi`).

Denominators: outcome rates (accepted as-is, edited, rejected, escalated, reverted) are shares of
the reviewed events (those a human touched); intervention frequency, error, timeout, fallback and
severe-failure rates are shares of all events. A rate with a zero denominator is null.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from flywheel.config import Settings
from flywheel.engine import connect
from flywheel.sql import load_sql
from flywheel.stats import wilson_interval
from flywheel.store import Layout, write_parquet_atomic
from flywheel.tables import DAILY_RATES, EVENT_OUTCOMES, ROLLING_RATES

# rate name -> (numerator column, denominator column)
RATES: dict[str, tuple[str, str]] = {
    "accepted_as_is_rate": ("accepted", "reviewed"),
    "edited_rate": ("edited", "reviewed"),
    "rejected_rate": ("rejected", "reviewed"),
    "escalated_rate": ("escalated", "reviewed"),
    "reverted_rate": ("reverted", "reviewed"),
    "intervention_rate": ("reviewed", "events"),
    "error_rate": ("errors", "events"),
    "timeout_rate": ("timeouts", "events"),
    "fallback_rate": ("fallbacks", "events"),
    "severe_failure_rate": ("severe_failures", "events"),
}


def with_rates(frame: pl.DataFrame) -> pl.DataFrame:
    """Add every rate of RATES with its Wilson interval to a frame of counts."""
    columns = []
    for name, (num, den) in RATES.items():
        k = frame[num].to_numpy().astype(float)
        n = frame[den].to_numpy().astype(float)
        lo, hi = wilson_interval(k, n)
        rate = pl.Series(name, k, dtype=pl.Float64) / pl.Series(n, dtype=pl.Float64)
        columns += [
            pl.when(pl.Series(n) > 0).then(rate).otherwise(None).alias(name),
            pl.Series(f"{name}_lo", lo, dtype=pl.Float64).fill_nan(None),
            pl.Series(f"{name}_hi", hi, dtype=pl.Float64).fill_nan(None),
        ]
    return frame.with_columns(columns) if frame.height else frame.with_columns(
        [pl.lit(None, pl.Float64).alias(c) for name in RATES for c in (name, f"{name}_lo", f"{name}_hi")])


def build_daily_rates(settings: Settings, day: date) -> pl.DataFrame:
    """Write and return the daily mart of `day` from its resolved outcomes."""
    layout = Layout(settings.store)
    source = layout.table(EVENT_OUTCOMES.path, day)
    with connect(settings) as con:
        counts = con.sql(load_sql("daily_rates"), params={"outcomes": str(source)}).pl()
    frame = with_rates(counts)
    write_parquet_atomic(frame.to_arrow(), layout.table(DAILY_RATES.path, day))
    return frame


def build_rolling_rates(settings: Settings, day: date) -> pl.DataFrame:
    """Write and return the 7- and 28-day windows per scenario ending at `day`."""
    layout = Layout(settings.store)
    days = layout.days(DAILY_RATES.path, day - timedelta(days=27), day)
    files = [str(layout.table(DAILY_RATES.path, d)) for d in reversed(days)]  # newest first
    if day not in days:
        raise ValueError(f"the daily mart of {day} must be built before its rolling windows")
    with connect(settings) as con:
        counts = con.sql(load_sql("rolling_rates"), params={"daily": files, "day": day}).pl()
    frame = with_rates(counts)
    write_parquet_atomic(frame.to_arrow(), layout.table(ROLLING_RATES.path, day))
    return frame
