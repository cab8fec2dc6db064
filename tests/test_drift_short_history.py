"""Drift on a short history (issue 14, bug 9): a new deployment with 7 days of daily marts, the
default policy (7-day current window against a 28-day baseline). A regression injected on day 4
is alerted within two days, by the monitor of the scenario's own history, and the six unchanged
scenarios are never alerted nor warned on any night; every row says how short the history is.

The daily marts are built by hand from seeded binomial draws (200 reviewed events a scenario a
day), so the truth is known: only `regressed` changes, its accepted-as-is rate dropping from 0.85 to
0.65 from day 4 on (a drop the monitor alerts within two days in 99.7% of such streams, measured on 1,000)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from flywheel.config import Settings
from flywheel.signals.drift import build_drift
from flywheel.signals.policy import load_policy
from flywheel.store import Layout, write_parquet_atomic
from flywheel.tables import DAILY_RATES

START = date(2026, 5, 1)
DAYS = 7
REGRESSION_DAY = START + timedelta(days=3)
RATES = {"stable_a": 0.95, "stable_b": 0.90, "stable_c": 0.85, "stable_d": 0.80, "stable_e": 0.70,
         "stable_f": 0.60, "regressed": 0.85}


def _accept_rate(scenario: str, day: date) -> float:
    return 0.65 if scenario == "regressed" and day >= REGRESSION_DAY else RATES[scenario]


def _write_marts(settings: Settings, seed: int) -> list[date]:
    rng = np.random.default_rng(seed)
    layout = Layout(settings.store)
    days = [START + timedelta(days=i) for i in range(DAYS)]
    for day in days:
        rows = []
        for scenario in RATES:
            events = int(rng.poisson(250))
            reviewed = int(rng.binomial(events, 0.8))
            accepted = int(rng.binomial(reviewed, _accept_rate(scenario, day)))
            severe = int(rng.binomial(events, 0.04))
            rows.append({"event_date": day, "scenario": scenario, "model": "m1", "prompt_version": "v1",
                         "autonomy_level": "assist", "events": events, "reviewed": reviewed, "accepted": accepted,
                         "severe_failures": severe})
        write_parquet_atomic(pl.DataFrame(rows).to_arrow(), layout.table(DAILY_RATES.path, day))
    return days


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_regression_on_a_seven_day_store_is_alerted_and_unchanged_scenarios_stay_quiet(settings, seed):
    days = _write_marts(settings, seed)
    policy = load_policy()
    frames = {day: build_drift(settings, policy, day) for day in days}
    flagged = {day: set(f.filter(pl.col("severity").is_in(["warn", "alert"]))["scenario"].to_list())
               for day, f in frames.items()}
    alerted = {day: set(f.filter(pl.col("severity") == "alert")["scenario"].to_list()) for day, f in frames.items()}
    for day in days:
        assert flagged[day] <= {"regressed"}, (day, flagged[day])
        if day < REGRESSION_DAY:
            assert not alerted[day], day
    first = min(day for day in days if "regressed" in alerted[day])
    assert first <= REGRESSION_DAY + timedelta(days=1)
    last = frames[days[-1]]
    row = last.filter((pl.col("scenario") == "regressed") & (pl.col("signal") == "accepted_as_is_rate")).row(0, named=True)
    assert row["severity"] == "alert" and row["direction"] == "worse"
    # the reference is the three days before the regression, the excursion starts on its day
    assert row["reference_days"] == 3 and row["episode_start"] == REGRESSION_DAY
    assert row["baseline_value"] == pytest.approx(0.85, abs=0.04)
    assert last["history_days"].unique().to_list() == [DAYS]


def test_the_first_days_only_build_the_reference_and_say_so(settings):
    days = _write_marts(settings, 1)
    policy = load_policy()
    second = build_drift(settings, policy, days[1])
    monitors = second.filter(pl.col("signal").is_in(["accepted_as_is_rate", "severe_failure_rate"]))
    assert monitors.height == 2 * len(RATES)
    assert monitors["severity"].unique().to_list() == ["info"]
    assert monitors["statistic"].null_count() == monitors.height
    assert monitors["reference_days"].unique().to_list() == [2] and monitors["history_days"].unique().to_list() == [2]
