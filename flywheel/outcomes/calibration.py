"""Calibration: does the model's confidence predict that a human accepts its output as-is?

Per scenario x model (and per scenario over all models, `model = '*'`), over the window of
FLYWHEEL_CALIBRATION_WINDOW_DAYS days ending at the day, among reviewed events that carry a
confidence: equal-count reliability bins, expected calibration error, Brier score, ROC AUC of
confidence for accepted-as-is, and the confidence gate the policy's `gate` section asks for: the
lowest threshold certified by fixed-sequence exact tests (`flywheel.stats.gate_threshold`), so that
the probability that its true accepted-as-is rate is below `gate.target` is at most `gate.delta`,
with its sample size, p-value and coverage (the share of all the window's events of that scenario
and model with a confidence at or above it). No threshold certified gives `gate_status = 'none'`.

The gate's rate is weighted by inclusion probability: events that could act alone (autonomous, or
gated at or above the gate their decision path logged) are the `audit` stratum, whose reviewed
events are only the audited sample; every other event is the `review` stratum. Above a candidate
threshold each stratum's accepted rate counts in proportion to its events there, not to its reviewed
events (`gate_weighting = 'inverse_probability'` when the window has both strata). ECE, Brier, ROC
AUC and the reliability bins describe the reviewed events as they are, unweighted.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from flywheel.config import Settings
from flywheel.engine import connect
from flywheel.outcomes.resolve import REVIEWED
from flywheel.signals.policy import Policy, load_policy
from flywheel.sql import sql_file
from flywheel.stats import brier_score, expected_calibration_error, gate_threshold, reliability_bins, roc_auc
from flywheel.store import Layout, write_parquet_atomic
from flywheel.tables import CALIBRATION, EVENT_OUTCOMES, RELIABILITY_BINS

ALL_MODELS = "*"


def calibrate(frame: pl.DataFrame, target: float, bins: int, delta: float = 0.05) -> tuple[list[dict], list[dict]]:
    """Calibration rows and reliability-bin rows of one group's events.

    `frame` has columns confidence (nullable), reviewed (bool), accepted (bool), optionally
    `stratum` ('review' or 'audit', default 'review': see the module docstring) and `n`: how many
    events each row stands for (default 1). Rows must come sorted by confidence, reviewed, accepted
    within each model: the statistics see the events expanded in that order. The gate is certified
    at `target` with error level `delta`.
    """
    n = frame["n"].to_numpy() if "n" in frame.columns else np.ones(frame.height, dtype=np.int64)
    volume = int(n.sum())
    conf = frame["confidence"].to_numpy()
    known = ~frame["confidence"].is_null().to_numpy()
    # strata as small integers in the order of their names (0 = 'audit', 1 = 'review' when both are
    # there): the gate compares and sorts these labels once per reviewed event, and as Python
    # strings that cost 11 of the 21 s of a week's calibration (30 days x 100k events a day)
    stratum = (frame["stratum"].fill_null("review").rank("dense").cast(pl.Int64).to_numpy() - 1
               if "stratum" in frame.columns else np.zeros(frame.height, dtype=np.int64))
    sample = (frame["reviewed"].fill_null(False).to_numpy() & known)
    c = np.repeat(conf[sample].astype(float), n[sample])
    y = np.repeat(frame["accepted"].to_numpy()[sample].astype(float), n[sample])
    s = np.repeat(stratum[sample], n[sample])
    bin_rows = reliability_bins(c, y, bins) if len(c) else []
    # every event with a confidence is in the population the gate's rate and coverage stand for
    population = (conf[known].astype(float), stratum[known], n[known])
    gate = gate_threshold(c, y, target, delta, stratum=s, population=population)
    strata = len(set(stratum[known][n[known] > 0]))
    row = {
        "events": volume, "reviewed_with_confidence": int(len(c)),
        "accepted_as_is_rate": float(y.mean()) if len(y) else None,
        "mean_confidence": float(c.mean()) if len(c) else None,
        "ece": _num(expected_calibration_error(bin_rows)) if bin_rows else None,
        "brier": _num(brier_score(c, y)) if len(c) else None,
        "roc_auc": _num(roc_auc(c, y)) if len(c) else None,
        "gate_target": target,
        "gate_status": "threshold" if gate else "none",
        "gate_threshold": gate["threshold"] if gate else None,
        "gate_sample_size": gate["sample_size"] if gate else None,
        "gate_accepted_rate": gate["rate"] if gate else None,
        "gate_lower_bound": gate["lower_bound"] if gate else None,
        "gate_delta": delta,
        "gate_p_value": gate["p_value"] if gate else None,
        "gate_weighting": "inverse_probability" if strata > 1 else "unweighted",
        "gate_coverage": (float(np.int64(n[known][conf[known] >= gate["threshold"]].sum()) / volume)
                          if gate and volume else None),
    }
    return [row], [{"bin": i + 1, **b} for i, b in enumerate(bin_rows)]


def _num(x: float) -> float | None:
    return None if x is None or np.isnan(x) else float(x)


def build_calibration(settings: Settings, day: date, policy: Policy | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Write and return (calibration, reliability bins) for the window ending at `day`.

    The gate's target and error level are `policy.gate` (default: the policy file of `settings`);
    a backtest passes its own policy (and settings whose store is its separate output).
    """
    policy = policy or load_policy(settings.policy)
    layout = Layout(settings.store)
    window = settings.calibration_window_days
    days = layout.days(EVENT_OUTCOMES.path, day - timedelta(days=window - 1), day)
    files = [str(layout.table(EVENT_OUTCOMES.path, d)) for d in reversed(days)]  # newest first
    if day not in days:
        raise ValueError(f"the outcomes of {day} must be built before its calibration")
    with connect(settings) as con:
        events = con.sql(sql_file("calibration_window"), params={"files": files, "reviewed": list(REVIEWED)}).pl()
    meta = {"window_end": day, "window_start": day - timedelta(days=window - 1)}
    cal_rows, bin_rows = [], []
    groups = [(key, part) for key, part in events.partition_by(["scenario", "model"], as_dict=True).items()] if events.height else []
    groups += [((s, ALL_MODELS), part) for (s,), part in
               (events.partition_by(["scenario"], as_dict=True).items() if events.height else [])]
    for (scenario, model), part in sorted(groups, key=lambda g: g[0]):
        rows, bins = calibrate(part, policy.gate.target, settings.reliability_bins, policy.gate.delta)
        cal_rows += [{**meta, "scenario": scenario, "model": model, **r} for r in rows]
        bin_rows += [{**meta, "scenario": scenario, "model": model, **b} for b in bins]
    calibration = pl.DataFrame(cal_rows, schema=CALIBRATION.polars_schema())
    reliability = pl.DataFrame(bin_rows, schema=RELIABILITY_BINS.polars_schema())
    write_parquet_atomic(calibration.to_arrow(), layout.table(CALIBRATION.path, day))
    write_parquet_atomic(reliability.to_arrow(), layout.table(RELIABILITY_BINS.path, day))
    return calibration, reliability
