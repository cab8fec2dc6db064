"""Drift signals: each scenario's outcome rates watched night after night with sequential monitors
that keep their false-alarm guarantee under nightly looks, and (per model and prompt version, and for
the inputs) the current window against the baseline window just before it.

Only the sequential monitors may `alert` (an alert demotes, `autonomy.py`); every other signal warns
at most. Each row has its statistic, threshold, sample sizes, `history_days` (days of daily history
in the lookback, so a short history says how short it is) and a severity (info / warn / alert):
- `accepted_as_is_rate`, `severe_failure_rate` (model and prompt version `*`): a self-starting
  binomial CUSUM (`sequential.monitor_rate`) over the daily counts of the lookback (the current and
  baseline windows, whatever part of them exists), recomputed from the stored daily marts each
  night: `alert` at log(`drift.arl_days`) + log(shifts) (average run length to a false alarm of at
  least `drift.arl_days` days per signal), `warn` at a tenth of that run length. The reference rate
  is the scenario's own history (`reference_days`); until it holds `drift.min_reference_days` days
  and `drift.min_sample` trials the row is `info` with no statistic. `episode_start` is the first
  day of the current excursion.
- the same two rates per model and per prompt version: two-proportion z-tests, current window against
  baseline; a significant change (Benjamini-Hochberg q-value over every test of the night below
  `drift.fdr`, size at least `drift.min_effect`) for the worse is `warn`: it says where a scenario's
  change comes from, and is not controlled under nightly looks, so it never demotes.
- `confidence_psi`, `input_length_psi`: population stability index on baseline quantile bins (`warn`
  at `drift.psi_warn`); `confidence_ks`: two-sample KS, `warn` when significant after BH.
- `calibration_ece`: the change of expected calibration error; `warn` at `drift.ece_warn_increase`.
- `input_mix`: the scenario's share of all events (two-proportion test; `warn` when significant and
  the share moved by half or more).
- `volume`: mean daily events, current / baseline; `warn` beyond `drift.volume_ratio_warn` either way.
PSI, KS and ECE stay `info` until the scenario has `drift.min_baseline_days` days of baseline.
- `failure_cluster_growth`: failure clusters new or growing in the scenario that day
  (`failure_drift`); `warn`.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from flywheel.config import Settings
from flywheel.engine import connect
from flywheel.outcomes.resolve import REVIEWED
from flywheel.signals.failure_drift import failure_growth_rows
from flywheel.signals.policy import Policy
from flywheel.signals.sequential import monitor_rate
from flywheel.signals.stattests import benjamini_hochberg, ks_test, psi, two_proportion_test
from flywheel.sql import load_sql
from flywheel.stats import expected_calibration_error, reliability_bins
from flywheel.store import Layout, write_parquet_atomic
from flywheel.tables import DAILY_RATES, DRIFT, DRIFT_WINDOW_COLUMNS, EVENT_OUTCOMES

SEVERITY = ("info", "warn", "alert")


def windows(policy: Policy, day: date) -> dict[str, date]:
    """current_start, current_end (= day), baseline_start, baseline_end."""
    cur = policy.windows.current_days
    base = policy.windows.baseline_days
    return {"current_end": day, "current_start": day - timedelta(days=cur - 1),
            "baseline_end": day - timedelta(days=cur), "baseline_start": day - timedelta(days=cur + base - 1)}


def existing_partitions(layout: Layout, table: str, start: date, end: date) -> list[str]:
    """The partition files of stored table `table` for the days `start` .. `end` that exist, in day order."""
    return [str(p) for p in layout.partitions(table, start, end)]


def _row(scenario: str, model: str, version: str, signal: str, **kw) -> dict:
    base = {"scenario": scenario, "model": model, "prompt_version": version, "signal": signal,
            "statistic": None, "p_value": None, "threshold": None, "baseline_value": None, "current_value": None,
            "baseline_n": None, "current_n": None, "effect": None, "direction": None, "reference_days": None,
            "reference_bound": None, "episode_start": None}
    base.update(kw)
    return base


def _rate_tests(counts: pl.DataFrame, policy: Policy) -> list[dict]:
    rows = []
    cur = counts.filter(pl.col("window") == "current")
    base = counts.filter(pl.col("window") == "baseline")
    joined = cur.join(base, on=["scenario", "model", "prompt_version"], how="left", suffix="_b")
    # the scenario as a whole is watched by the sequential monitors; these say where a change comes from
    joined = joined.filter((pl.col("model") != "*") | (pl.col("prompt_version") != "*"))
    for r in joined.iter_rows(named=True):
        for signal, num, den, bad_when in (("accepted_as_is_rate", "accepted", "reviewed", "down"),
                                            ("severe_failure_rate", "severe_failures", "events", "up")):
            k2, n2 = r[num] or 0, r[den] or 0
            k1, n1 = r[f"{num}_b"] or 0, r[f"{den}_b"] or 0
            if n1 < policy.drift.min_sample or n2 < policy.drift.min_sample:
                continue
            z, p = two_proportion_test(k1, n1, k2, n2)
            effect = k2 / n2 - k1 / n1
            worse = effect < 0 if bad_when == "down" else effect > 0
            rows.append(_row(r["scenario"], r["model"], r["prompt_version"], signal, statistic=z, p_value=p,
                             threshold=policy.drift.min_effect, baseline_value=k1 / n1, current_value=k2 / n2,
                             baseline_n=n1, current_n=n2, effect=effect,
                             direction="worse" if worse else "better", _kind="rate"))
    return rows


def _severity(row: dict, q: float | None, policy: Policy, baseline_days: dict[str, int]) -> str:
    """info / warn / alert of one row; only the sequential monitors (`_kind` "sequential") alert."""
    d = policy.drift
    kind = row.pop("_kind")
    if kind in ("psi", "ece", "ks") and baseline_days.get(row["scenario"], 0) < d.min_baseline_days:
        return "info"  # the baseline is too short to hold the current window against
    stat = row["statistic"]
    if kind == "sequential":
        if stat is None or np.isnan(stat):
            return "info"  # still building its reference
        return "alert" if stat >= row["threshold"] else "warn" if stat >= row.pop("_warn") else "info"
    if kind == "rate":
        significant = q is not None and q < d.fdr and abs(row["effect"]) >= d.min_effect
        return "warn" if significant and row["direction"] == "worse" else "info"
    if kind == "ks":
        return "warn" if q is not None and q < d.fdr else "info"
    if kind == "psi":
        return "warn" if stat >= d.psi_warn else "info"
    if kind == "ece":
        return "warn" if stat >= d.ece_warn_increase else "info"
    if kind == "mix":
        moved = row["baseline_value"] and abs(row["effect"]) >= 0.5 * row["baseline_value"]
        return "warn" if q is not None and q < d.fdr and moved else "info"
    if kind == "failure":
        return "warn" if stat >= 1 else "info"
    if kind == "volume":
        ratio = stat
        return "warn" if ratio >= d.volume_ratio_warn or ratio <= 1 / d.volume_ratio_warn else "info"
    raise ValueError(kind)


def build_drift(settings: Settings, policy: Policy, day: date) -> pl.DataFrame:
    """Write and return every drift signal of the run's `day`."""
    layout = Layout(settings.store)
    w = windows(policy, day)
    daily_files = existing_partitions(layout, DAILY_RATES.path, w["baseline_start"], w["current_end"])
    rows: list[dict] = []
    baseline_days: dict[str, int] = {}
    history_days: dict[str, int] = {}
    with connect(settings) as con:
        if daily_files:
            counts = con.sql(load_sql("drift_counts"), params={"files": daily_files, "current_start": w["current_start"]}).pl()
            top = counts.filter((pl.col("window") == "baseline") & (pl.col("model") == "*") & (pl.col("prompt_version") == "*"))
            baseline_days = dict(zip(top["scenario"].to_list(), top["days"].to_list()))
            rows += _rate_tests(counts, policy)
            daily = con.sql(load_sql("drift_daily"), params={"files": daily_files}).pl()
            history_days = {s: int(n) for s, n in daily.filter(pl.col("events") > 0).group_by("scenario")
                            .agg(pl.col("event_date").n_unique()).iter_rows()}
            rows += sequential_rows(daily, policy, w["current_start"])
            rows += _mix_and_volume(counts, policy)
        rows += _distribution_rows(con, layout, w, policy)
    rows += failure_growth_rows(layout, policy, day)
    testable = [i for i, r in enumerate(rows) if r["p_value"] is not None]
    q = benjamini_hochberg(np.array([rows[i]["p_value"] for i in testable]))
    qmap = dict(zip(testable, q.tolist()))
    for i, r in enumerate(rows):
        r["q_value"] = qmap.get(i)
        r["severity"] = _severity(r, r["q_value"], policy, baseline_days)
        r.pop("_warn", None)
        r["history_days"] = history_days.get(r["scenario"], 0)
    schema = {k: v for k, v in DRIFT.polars_schema().items() if k not in DRIFT_WINDOW_COLUMNS}
    frame = pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)
    frame = frame.with_columns(pl.lit(day).alias("day"), pl.lit(w["current_start"]).alias("current_start"),
                               pl.lit(w["baseline_start"]).alias("baseline_start"),
                               pl.lit(w["baseline_end"]).alias("baseline_end"),
                               pl.lit(policy.version).alias("policy_version"))
    write_parquet_atomic(frame.to_arrow(), layout.table(DRIFT.path, day))
    return frame


_MONITORED = (("accepted_as_is_rate", "accepted", "reviewed", "down"),
              ("severe_failure_rate", "severe_failures", "events", "up"))


def sequential_rows(daily: pl.DataFrame, policy: Policy, current_start: date) -> list[dict]:
    """The sequential monitors of every scenario: one row per scenario and monitored rate from its
    daily counts (`daily`: scenario, event_date, events, reviewed, accepted, severe_failures over
    the lookback). baseline_value is the reference rate, current_value the rate over the current
    window (from `current_start`), effect their difference."""
    d = policy.drift
    rows = []
    for (scenario,), series in sorted(daily.partition_by("scenario", as_dict=True).items()):
        series = series.sort("event_date")
        in_current = (series["event_date"] >= current_start).to_numpy()
        for signal, num, den, direction in _MONITORED:
            k, n = series[num].to_numpy(), series[den].to_numpy()
            m = monitor_rate(k, n, direction, tuple(d.shifts), d.arl_days, d.min_reference_days, d.min_sample,
                             d.reference_z)
            ck, cn = int(k[in_current].sum()), int(n[in_current].sum())
            current = ck / cn if cn else None
            effect = None if current is None or m.reference_rate is None else current - m.reference_rate
            worse = effect is not None and (effect < 0 if direction == "down" else effect > 0)
            dates = series["event_date"].to_list()
            rows.append(_row(scenario, "*", "*", signal, statistic=None if np.isnan(m.statistic) else m.statistic,
                             threshold=m.threshold, baseline_value=m.reference_rate, current_value=current,
                             baseline_n=m.reference_n, current_n=cn, effect=effect,
                             direction=None if effect is None else "worse" if worse else "better",
                             reference_days=m.reference_days, reference_bound=m.reference_bound,
                             episode_start=None if m.episode_start is None else dates[m.episode_start],
                             _warn=m.warn_threshold, _kind="sequential"))
    return rows


def _mix_and_volume(counts: pl.DataFrame, policy: Policy) -> list[dict]:
    top = counts.filter((pl.col("model") == "*") & (pl.col("prompt_version") == "*"))
    totals = top.group_by("window").agg(pl.col("events").sum())
    total = {r["window"]: r["events"] for r in totals.iter_rows(named=True)}
    rows = []
    cur = top.filter(pl.col("window") == "current")
    base = top.filter(pl.col("window") == "baseline")
    for r in cur.join(base, on="scenario", how="inner", suffix="_b").iter_rows(named=True):
        if r["events_b"] < policy.drift.min_sample or r["events"] < policy.drift.min_sample:
            continue
        z, p = two_proportion_test(r["events_b"], total["baseline"], r["events"], total["current"])
        share_b, share_c = r["events_b"] / total["baseline"], r["events"] / total["current"]
        rows.append(_row(r["scenario"], "*", "*", "input_mix", statistic=z, p_value=p, baseline_value=share_b,
                         current_value=share_c, baseline_n=total["baseline"], current_n=total["current"],
                         effect=share_c - share_b, threshold=0.5, _kind="mix"))
        per_day_b, per_day_c = r["events_b"] / r["days_b"], r["events"] / r["days"]
        rows.append(_row(r["scenario"], "*", "*", "volume", statistic=per_day_c / per_day_b, baseline_value=per_day_b,
                         current_value=per_day_c, baseline_n=r["events_b"], current_n=r["events"],
                         threshold=policy.drift.volume_ratio_warn, _kind="volume"))
    return rows


def _distribution_rows(con, layout: Layout, w: dict, policy: Policy) -> list[dict]:
    files = existing_partitions(layout, EVENT_OUTCOMES.path, w["baseline_start"], w["current_end"])
    if not files:
        return []
    samples = _window_samples(con, files, w["current_start"])
    rows = []
    for scenario in sorted(samples):
        base, cur = samples[scenario][False], samples[scenario][True]
        if cur["events"] < policy.drift.min_sample or base["events"] < policy.drift.min_sample:
            continue
        cb, cc = base["confidence"], cur["confidence"]
        if len(cb) >= policy.drift.min_sample and len(cc) >= policy.drift.min_sample:
            rows.append(_row(scenario, "*", "*", "confidence_psi", statistic=psi(cb, cc), threshold=policy.drift.psi_warn,
                             baseline_value=float(cb.mean()), current_value=float(cc.mean()),
                             baseline_n=len(cb), current_n=len(cc), _kind="psi"))
            d, p = ks_test(cb, cc)
            rows.append(_row(scenario, "*", "*", "confidence_ks", statistic=d, p_value=p, threshold=policy.drift.fdr,
                             baseline_n=len(cb), current_n=len(cc), _kind="ks"))
        lb, lc = base["input_chars"], cur["input_chars"]
        if len(lb) >= policy.drift.min_sample and len(lc) >= policy.drift.min_sample:
            rows.append(_row(scenario, "*", "*", "input_length_psi", statistic=psi(lb, lc), threshold=policy.drift.psi_warn,
                             baseline_value=float(lb.mean()), current_value=float(lc.mean()),
                             baseline_n=len(lb), current_n=len(lc), _kind="psi"))
        eces = []
        for sample in (base, cur):
            rc, ra = sample["reviewed_confidence"], sample["reviewed_accepted"]
            eces.append((expected_calibration_error(reliability_bins(rc, ra))
                         if len(rc) >= policy.drift.min_sample else None, len(rc)))
        if eces[0][0] is not None and eces[1][0] is not None:
            rows.append(_row(scenario, "*", "*", "calibration_ece", statistic=eces[1][0] - eces[0][0],
                             threshold=policy.drift.ece_warn_increase, baseline_value=eces[0][0], current_value=eces[1][0],
                             baseline_n=eces[0][1], current_n=eces[1][1], effect=eces[1][0] - eces[0][0], _kind="ece"))
    return rows


def _window_samples(con, files: list[str], current_start: date) -> dict[str, dict[bool, dict]]:
    """Per scenario and window (is_current): the event count, the non-null confidences, the
    non-null input lengths, and the confidences and accepted-as-is flags (0/1) of the reviewed
    events with a confidence, as numpy arrays in a fixed order (sorted), from counts of distinct
    values rather than every event: reading and moving the events was most of the cost."""
    params = {"files": files, "cs": current_start}
    conf = con.sql(load_sql("drift_confidence_counts"), params={**params, "reviewed": list(REVIEWED)}).pl()
    chars = con.sql(load_sql("drift_input_chars"), params=params).pl()
    empty = {"events": 0, "confidence": np.array([], float), "input_chars": np.array([], np.int64),
             "reviewed_confidence": np.array([], float), "reviewed_accepted": np.array([], float)}
    out: dict[str, dict[bool, dict]] = {}
    for (scenario, is_current), part in conf.partition_by(["scenario", "is_current"], as_dict=True).items():
        n = part["n"].to_numpy()
        known = part["confidence"].is_not_null().to_numpy()
        c = part["confidence"].to_numpy().astype(float)[known]
        reviewed, accepted = part["n_reviewed"].to_numpy()[known], part["n_accepted"].to_numpy()[known]
        # the reviewed events of each confidence: not accepted first, then accepted
        split = np.column_stack([reviewed - accepted, accepted]).ravel()
        out.setdefault(scenario, {False: dict(empty), True: dict(empty)})[is_current] = {
            "events": int(n.sum()), "confidence": np.repeat(c, n[known]),
            "input_chars": empty["input_chars"], "reviewed_confidence": np.repeat(c, reviewed),
            "reviewed_accepted": np.repeat(np.tile([0.0, 1.0], len(c)), split),
        }
    for (scenario, is_current), part in chars.partition_by(["scenario", "is_current"], as_dict=True).items():
        if scenario in out:
            out[scenario][is_current]["input_chars"] = np.repeat(part["input_chars"].to_numpy(), part["n"].to_numpy())
    return out
