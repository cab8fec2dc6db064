"""The pandas-notebook baseline: the day's per-scenario outcome counts with 95% Wilson intervals,
computed from the landing files the way an analyst would write it in a pandas notebook.

Read every file with pandas (JSON Lines line by line with `json.loads`, skipping lines that do not
parse to an object, since `pd.read_json(lines=True)` stops at the first bad line; CSV with
`on_bad_lines="skip"`; Parquet with `pd.read_parquet`), keep one copy of each event id, take each
event's latest intervention (ties: the more severe action, then the larger intervention id), apply
the outcome rules of bench/landing_floor.sql, count per scenario and outcome, and add each
outcome's share of the scenario's events with its Wilson interval. The bench times `notebook()`
against the DuckDB query over the same files (bench/landing_floor.sql).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd

EVENT_COLUMNS = ["event_id", "scenario", "autonomy_level", "confidence", "output_text", "decision_path"]
INTERVENTION_COLUMNS = ["intervention_id", "event_id", "occurred_at", "action", "final_text"]
SEVERITY = {"reverted": 5, "rejected": 4, "escalated": 3, "edited": 2, "accepted": 1}
Z95 = 1.959963984540054


def family(path: Path) -> str:
    """'events' or 'interventions', from the landing folder or the file name."""
    for part in (path.parent.name, path.name):
        for fam in ("interventions", "events"):
            if part.startswith(fam):
                return fam
    raise ValueError(f"not a landing file of events or interventions: {path}")


def read_file(path: Path, columns: list[str]) -> pd.DataFrame:
    name = path.name
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")):
        opener = gzip.open if name.endswith(".gz") else open
        records = []
        with opener(path, "rb") as fh:
            for line in fh:
                try:
                    obj = json.loads(line)
                except ValueError:  # truncated, NaN, not UTF-8: skipped
                    continue
                if isinstance(obj, dict):
                    records.append(obj)
        frame = pd.DataFrame.from_records(records, columns=columns)
    elif name.endswith(".csv"):
        # no usecols: with it pandas keeps a row with a cell too many instead of skipping it
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], on_bad_lines="skip",
                            encoding_errors="replace")
    elif name.endswith(".parquet"):
        frame = pd.read_parquet(path, columns=columns)
    else:
        raise ValueError(f"unsupported landing file: {path}")
    return frame.reindex(columns=columns)


def _route_and_gate(value: object) -> tuple[object, float]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value, np.nan
    if isinstance(value, dict):
        gate = value.get("gate")
        try:
            gate = float(gate) if gate is not None else np.nan
        except (TypeError, ValueError):
            gate = np.nan
        route = value.get("route")
        return (route if isinstance(route, str) else None), gate
    if isinstance(value, str):
        return value, np.nan
    return None, np.nan


def wilson(k: pd.Series, n: pd.Series, z: float = Z95) -> tuple[pd.Series, pd.Series]:
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def notebook(files: list[Path]) -> pd.DataFrame:
    """Per scenario and outcome: events, share of the scenario's events, Wilson 95% bounds."""
    events = pd.concat([read_file(f, EVENT_COLUMNS) for f in files if family(f) == "events"], ignore_index=True)
    ivs = [read_file(f, INTERVENTION_COLUMNS) for f in files if family(f) == "interventions"]
    interventions = pd.concat(ivs, ignore_index=True) if ivs else pd.DataFrame(columns=INTERVENTION_COLUMNS)

    events = events[events["event_id"].notna() & events["scenario"].notna() & (events["scenario"] != "")]
    events = events.drop_duplicates("event_id")
    events["confidence"] = pd.to_numeric(events["confidence"], errors="coerce")
    routes = events["decision_path"].map(_route_and_gate)
    events["route"] = routes.str[0]
    events["gate"] = pd.to_numeric(routes.str[1], errors="coerce")

    iv = interventions[interventions["intervention_id"].notna() & interventions["event_id"].notna()
                       & interventions["action"].isin(list(SEVERITY))].copy()
    iv["t"] = pd.to_datetime(iv["occurred_at"], utc=True, errors="coerce", format="ISO8601")
    iv = iv[iv["t"].notna()]
    iv["sev"] = iv["action"].map(SEVERITY)
    last = iv.sort_values(["t", "sev", "intervention_id"]).drop_duplicates("event_id", keep="last")

    df = events.merge(last[["event_id", "action", "final_text"]], on="event_id", how="left")
    changed = (df["action"] == "accepted") & df["final_text"].notna() & (df["final_text"] != "") & (
        df["final_text"] != df["output_text"])
    route = df["route"].astype("string").str.lower()
    has_route = df["route"].notna()
    alone = df["autonomy_level"].isin(["gated", "autonomous"]) & np.where(
        has_route, route.str.startswith("auto").fillna(False),
        (df["autonomy_level"] == "autonomous") | (df["confidence"] >= df["gate"]).fillna(False))
    df["outcome"] = np.select([changed, df["action"].notna(), alone],
                              ["edited", df["action"], "acted_alone"], "awaiting_review")

    counts = df.groupby(["scenario", "outcome"]).size().rename("n").reset_index()
    counts["events"] = counts.groupby("scenario")["n"].transform("sum")
    counts["share"] = counts["n"] / counts["events"]
    counts["share_lo"], counts["share_hi"] = wilson(counts["n"], counts["events"])
    return counts.sort_values(["scenario", "outcome"], ignore_index=True)
