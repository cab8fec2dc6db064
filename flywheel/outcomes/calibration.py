"""Calibration: does the model's confidence predict that a human accepts its output as-is?

Per scenario x model (and per scenario over all models, `model = '*'`), over the window of
FLYWHEEL_CALIBRATION_WINDOW_DAYS days ending at the day, among reviewed events that carry a
confidence: equal-count reliability bins, expected calibration error, Brier score, ROC AUC of
confidence for accepted-as-is, and the gate recommendation: the lowest confidence threshold at
which the Wilson lower bound of the accepted-as-is rate, among reviewed events at or above it,
reaches FLYWHEEL_GATE_TARGET (default 0.95), with its sample size and its coverage (the share of
all the window's events of that scenario and model with confidence at or above it). No threshold
qualifying gives `gate_status = 'none'`.

Reviewed events of a gated scenario above its current gate are only the audited sample; the
figures describe the events humans saw.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from flywheel.config import Settings
from flywheel.engine import connect
from flywheel.outcomes.resolve import REVIEWED, TABLE as OUTCOMES_TABLE
from flywheel.stats import brier_score, expected_calibration_error, gate_threshold, reliability_bins, roc_auc
from flywheel.store import Layout, write_parquet_atomic

TABLE = "outcomes/calibration"
BINS = "outcomes/reliability_bins"
ALL_MODELS = "*"

_WINDOW_SQL = """
SELECT scenario, model, confidence, outcome IN ({reviewed}) AS reviewed, outcome = 'accepted' AS accepted,
       count(*) AS n
FROM read_parquet($files, union_by_name = true)
GROUP BY ALL
ORDER BY scenario, model, confidence, reviewed, accepted  -- a fixed order: float sums do not depend on file order
"""


def calibrate(frame: pl.DataFrame, target: float, bins: int) -> tuple[list[dict], list[dict]]:
    """Calibration rows and reliability-bin rows of one group's events.

    `frame` has columns confidence (nullable), reviewed (bool), accepted (bool), and optionally
    `n`: how many events each row stands for (default 1). Rows must come sorted by confidence,
    reviewed, accepted within each model: the statistics see the events expanded in that order.
    """
    n = frame["n"].to_numpy() if "n" in frame.columns else np.ones(frame.height, dtype=np.int64)
    volume = int(n.sum())
    conf = frame["confidence"].to_numpy()
    known = ~frame["confidence"].is_null().to_numpy()
    sample = (frame["reviewed"].fill_null(False).to_numpy() & known)
    c = np.repeat(conf[sample].astype(float), n[sample])
    y = np.repeat(frame["accepted"].to_numpy()[sample].astype(float), n[sample])
    bin_rows = reliability_bins(c, y, bins) if len(c) else []
    gate = gate_threshold(c, y, target)
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
        "gate_coverage": (float(np.int64(n[known][conf[known] >= gate["threshold"]].sum()) / volume)
                          if gate and volume else None),
    }
    return [row], [{"bin": i + 1, **b} for i, b in enumerate(bin_rows)]


def _num(x: float) -> float | None:
    return None if x is None or np.isnan(x) else float(x)


def build_calibration(settings: Settings, day: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Write and return (calibration, reliability bins) for the window ending at `day`."""
    layout = Layout(settings.store)
    window = settings.calibration_window_days
    files = [str(p) for p in (layout.table(OUTCOMES_TABLE, day - timedelta(days=i)) for i in range(window)) if p.exists()]
    if not layout.table(OUTCOMES_TABLE, day).exists():
        raise ValueError(f"the outcomes of {day} must be built before its calibration")
    con = connect(settings)
    sql = _WINDOW_SQL.replace("{reviewed}", ", ".join(f"'{o}'" for o in REVIEWED))
    events = con.sql(sql, params={"files": files}).pl()
    meta = {"window_end": day, "window_start": day - timedelta(days=window - 1)}
    cal_rows, bin_rows = [], []
    groups = [(key, part) for key, part in events.partition_by(["scenario", "model"], as_dict=True).items()] if events.height else []
    groups += [((s, ALL_MODELS), part) for (s,), part in
               (events.partition_by(["scenario"], as_dict=True).items() if events.height else [])]
    for (scenario, model), part in sorted(groups, key=lambda g: g[0]):
        rows, bins = calibrate(part, settings.gate_target, settings.reliability_bins)
        cal_rows += [{**meta, "scenario": scenario, "model": model, **r} for r in rows]
        bin_rows += [{**meta, "scenario": scenario, "model": model, **b} for b in bins]
    calibration = pl.DataFrame(cal_rows, schema=_CAL_SCHEMA)
    reliability = pl.DataFrame(bin_rows, schema=_BIN_SCHEMA)
    write_parquet_atomic(calibration.to_arrow(), layout.table(TABLE, day))
    write_parquet_atomic(reliability.to_arrow(), layout.table(BINS, day))
    return calibration, reliability


_CAL_SCHEMA = {
    "window_end": pl.Date, "window_start": pl.Date, "scenario": pl.String, "model": pl.String,
    "events": pl.Int64, "reviewed_with_confidence": pl.Int64, "accepted_as_is_rate": pl.Float64,
    "mean_confidence": pl.Float64, "ece": pl.Float64, "brier": pl.Float64, "roc_auc": pl.Float64,
    "gate_target": pl.Float64, "gate_status": pl.String, "gate_threshold": pl.Float64,
    "gate_sample_size": pl.Int64, "gate_accepted_rate": pl.Float64, "gate_lower_bound": pl.Float64,
    "gate_coverage": pl.Float64,
}
_BIN_SCHEMA = {
    "window_end": pl.Date, "window_start": pl.Date, "scenario": pl.String, "model": pl.String, "bin": pl.Int64,
    "conf_lo": pl.Float64, "conf_hi": pl.Float64, "mean_confidence": pl.Float64, "observed_rate": pl.Float64,
    "n": pl.Int64,
}
