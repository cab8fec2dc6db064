"""Backtest: replay policies over the stored history and say what would have differed.

`backtest(settings, candidate, first, last)` replays the policy in force and the candidate policy
over the same days, each into a replay store of its own under the output folder: the real store's
inputs (events, outcomes, failure clusters) are read through symbolic links, and everything a replay
writes (calibration with its policy's gate section, drift, gate evaluations, decisions, its own
decision log and approvals ledger) stays in its folder. The real approvals ledger, the decision
tables and the published feed are never touched.

Both replays start from the levels the logs show and make the same assumption about humans: every
promotion is approved on its day (`approve=True`, the default), or none is. Fail-safe demotions
apply as the policy says. The comparison then holds only the policies apart: promotions and
demotions, the gates and their coverage, the review hours taken off humans, and the failures that
would have gone out unreviewed above the gate (events humans reviewed in reality and found failing,
that the replay's level and gate would have let act alone the next day).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from flywheel.config import Settings
from flywheel.engine import connect
from flywheel.objectstore import is_remote, polars_options, url
from flywheel.outcomes.calibration import build_calibration
from flywheel.signals.autonomy import calibration_gates
from flywheel.signals.decide import decide_day
from flywheel.signals.ledger import append_ledger, effective_levels, levels_before, read_ledger
from flywheel.signals.policy import Policy
from flywheel.sql import load_sql
from flywheel.store import Layout
from flywheel.tables import DECISIONS, EVENT_OUTCOMES

# Folders of the store a replay writes itself; everything else is read from the real store.
_OWN = {"signals", "decisions", "_tmp", "_schema", "outcomes", "backtest"}
_OWN_OUTCOMES = {"calibration", "reliability_bins"}
MARKER = ".flywheel-replay"


def replay_store(settings: Settings, out: Path, link_days_before: date | None = None) -> Settings:
    """Settings of a new replay store at `out` that reads the real store's inputs through symbolic
    links and writes its own signals, decisions, calibration and ledger. With `link_days_before`,
    the real gate evaluations of the days before it are linked too (a decision's streak and
    episode read them). `out` must not exist, or be an earlier replay store (it is replaced)."""
    if is_remote(settings.store) or is_remote(out):
        raise ValueError(f"a replay store links to the real store's files: it needs a local store and output folder, "
                         f"not {settings.store} / {out} (copy the store to a local folder to backtest or explain)")
    real = settings.store.resolve()
    if out.exists():
        if not (out / MARKER).exists():
            raise ValueError(f"{out} exists and is not a replay store: choose another output folder")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("a flywheel replay store: its inputs are links into " + str(real) + "\n")
    for entry in sorted(real.iterdir()) if real.is_dir() else []:
        if entry.name not in _OWN and not entry.name.startswith("."):
            (out / entry.name).symlink_to(entry)
    (out / "outcomes").mkdir()
    for entry in sorted((real / "outcomes").iterdir()) if (real / "outcomes").is_dir() else []:
        if entry.name not in _OWN_OUTCOMES:
            (out / "outcomes" / entry.name).symlink_to(entry)
    if link_days_before is not None:
        gates = real / "signals" / "gate_evaluations"
        (out / "signals" / "gate_evaluations").mkdir(parents=True)
        for entry in sorted(gates.glob("event_date=*")) if gates.is_dir() else []:
            if entry.name.split("=", 1)[1] < link_days_before.isoformat():
                (out / "signals" / "gate_evaluations" / entry.name).symlink_to(entry)
    return replace(settings, store=out, db=out / "replay.duckdb", publish=out / "publish")


def stored_days(settings: Settings, first: date | None = None, last: date | None = None) -> list[date]:
    """The days with resolved outcomes in the store, within first..last."""
    folder = Layout(settings.store).root / EVENT_OUTCOMES.path
    days = sorted(date.fromisoformat(p.parent.name.split("=", 1)[1]) for p in folder.glob("event_date=*/data.parquet"))
    return [d for d in days if (first is None or d >= first) and (last is None or d <= last)]


def replay(settings: Settings, policy: Policy, days: list[date], out: Path, approve: bool = True,
           progress: Callable[[], None] | None = None) -> Settings:
    """Replay `policy` over `days` (ascending) into a new replay store at `out`; returns its settings."""
    bt = replay_store(settings, out)
    for day in days:
        build_calibration(bt, day, policy)
        frame = decide_day(bt, day, run_id=f"backtest-{policy.version}", policy=policy)
        if approve:
            for r in frame.filter(pl.col("requires_approval")).iter_rows(named=True):
                append_ledger(bt, {"decision_id": r["decision_id"], "verdict": "approved", "by": "backtest",
                                   "note": "every promotion approved on its day", "kind": r["kind"],
                                   "scenario": r["scenario"], "level": r["recommended"], "previous_level": r["current"],
                                   "day": day.isoformat()})
        if progress:
            progress()
    return bt


@dataclass
class ReplayResult:
    """What one policy's replay decided and what it would have exposed."""

    policy: Policy
    decisions: pl.DataFrame
    per_scenario: dict[str, dict[str, Any]]
    totals: dict[str, Any]


def measure(bt: Settings, policy: Policy, days: list[date]) -> ReplayResult:
    """Read a finished replay: every decision, and per scenario the promotions, demotions, days at
    each level, the gates in force on its gated days (with their coverage), review hours taken off
    humans and failures that would have gone out unreviewed."""
    layout = Layout(bt.store)
    files = [layout.table(DECISIONS.path, d) for d in days]
    frames = [pl.read_parquet(url(f), storage_options=polars_options(f)) for f in files if f.exists()]
    decisions = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()
    ledger = read_ledger(bt)
    per: dict[str, dict[str, Any]] = {}

    def slot(scenario: str) -> dict[str, Any]:
        return per.setdefault(scenario, {"promotions": [], "demotions": [], "days_at": {}, "gate_thresholds": [],
                                         "gate_coverages": [], "acting_alone": 0, "failures_unreviewed": 0,
                                         "review_hours_off": 0.0, "final_level": None})

    for e in ledger:
        if e.get("kind") != "autonomy" or e.get("verdict") not in ("approved", "automatic"):
            continue
        key = "promotions" if e["verdict"] == "approved" else "demotions"
        slot(e["scenario"])[key].append({"day": e["day"], "from": e["previous_level"], "to": e["level"]})
    # the level decided on day D, and the confidence gate its calibration recommends, govern D + 1
    calibrated = {d: calibration_gates(bt, d) for d in days}  # each day's calibration read once
    gates_by_day = {d: {s: g["gate_threshold"] for s, g in cal.items() if g.get("gate_threshold") is not None}
                    for d, cal in calibrated.items()}
    coverage_by_day = {d: {s: g.get("gate_coverage") for s, g in cal.items()} for d, cal in calibrated.items()}
    for day in days[1:]:
        outcomes = layout.table(EVENT_OUTCOMES.path, day)
        if not outcomes.exists():
            continue
        in_force = {s: e["level"] for s, e in levels_before(bt, day).items()}
        logged = _logged_levels(decisions, day - timedelta(days=1))
        plan = []
        for scenario in sorted(set(logged) | set(in_force)):
            level = in_force.get(scenario, logged.get(scenario))
            slot(scenario)["days_at"][level] = slot(scenario)["days_at"].get(level, 0) + 1
            threshold = gates_by_day.get(day - timedelta(days=1), {}).get(scenario)
            if level == "gated" and threshold is not None:
                slot(scenario)["gate_thresholds"].append(threshold)
                slot(scenario)["gate_coverages"].append(coverage_by_day[day - timedelta(days=1)].get(scenario))
            if level == "autonomous" or (level == "gated" and threshold is not None):
                plan.append({"scenario": scenario, "level": level, "threshold": threshold})
        if not plan:
            continue
        with connect(bt) as con:
            con.register("plan", pl.DataFrame(plan, schema={"scenario": pl.String, "level": pl.String,
                                                            "threshold": pl.Float64}).to_arrow())
            exposure = con.sql(load_sql("backtest_exposure"), params={"outcomes": str(outcomes)}).fetchall()
        for r in exposure:
            scenario, alone, failures, _events, seconds = r
            s = slot(scenario)
            s["acting_alone"] += int(alone)
            s["failures_unreviewed"] += int(failures)
            s["review_hours_off"] += float(alone) * float(seconds or 0.0) / 3600
    final = effective_levels(bt)
    last_logged = _logged_levels(decisions, days[-1]) if days else {}
    for scenario, s in per.items():
        s["final_level"] = final[scenario]["level"] if scenario in final else last_logged.get(scenario)
        s["review_hours_off"] = round(s["review_hours_off"], 2)
    totals = {k: sum(len(s[k]) if isinstance(s[k], list) else s[k] for s in per.values())
              for k in ("promotions", "demotions", "acting_alone", "failures_unreviewed", "review_hours_off")}
    totals["review_hours_off"] = round(totals["review_hours_off"], 2)
    return ReplayResult(policy, decisions, dict(sorted(per.items())), totals)


def _logged_levels(decisions: pl.DataFrame, day: date) -> dict[str, str]:
    """The level each autonomy decision of `day` was made under (the level the logs show where
    the ledger had none)."""
    if decisions.height == 0:
        return {}
    rows = decisions.filter((pl.col("kind") == "autonomy") & (pl.col("day") == day))
    return {r["scenario"]: r["current"] for r in rows.iter_rows(named=True)}


def differences(base: pl.DataFrame, other: pl.DataFrame) -> list[dict[str, Any]]:
    """Decisions whose action or recommendation differs between two replays, by day, kind,
    scenario and subject (a decision only one replay made counts as a difference)."""
    key = ["day", "kind", "scenario", "subject"]
    cols = key + ["action", "recommended", "rule"]
    a = base.select(cols) if base.height else pl.DataFrame(schema={c: pl.String for c in cols}).with_columns(pl.col("day").cast(pl.Date))
    b = other.select(cols) if other.height else a.clear()
    joined = a.join(b, on=key, how="full", suffix="_candidate", coalesce=True)
    changed = joined.filter((pl.col("action").ne_missing(pl.col("action_candidate")))
                            | (pl.col("recommended").ne_missing(pl.col("recommended_candidate"))))
    return changed.sort(key).to_dicts()


def backtest(settings: Settings, in_force: Policy, candidate: Policy, out: Path, first: date | None = None,
             last: date | None = None, approve: bool = True, progress: Callable[[], None] | None = None) -> dict[str, Any]:
    """Replay the policy in force and `candidate` over the stored days first..last into `out`
    (`out/in_force`, `out/candidate`) and return the comparison (also written to
    `out/backtest.json`). Raises ValueError when the store has no outcomes in the range."""
    days = stored_days(settings, first, last)
    if not days:
        raise ValueError(f"no stored outcomes between {first or 'the first day'} and {last or 'the last day'} "
                         f"in {settings.store}: run `flywheel run` first")
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise ValueError(f"{out} is not empty and is not a replay store: choose another output folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("a flywheel backtest: in_force/ and candidate/ are replay stores\n")
    results = {}
    for name, policy in (("in_force", in_force), ("candidate", candidate)):
        bt = replay(settings, policy, days, out / name, approve, progress)
        results[name] = measure(bt, policy, days)
    diff = differences(results["in_force"].decisions, results["candidate"].decisions)
    report = {
        "first_day": days[0], "last_day": days[-1], "days": len(days),
        "approvals": "every promotion approved on its day" if approve else "no promotion approved",
        "policies": {name: {"version": r.policy.version, "digest": r.policy.digest()} for name, r in results.items()},
        "totals": {name: r.totals for name, r in results.items()},
        "scenarios": {name: r.per_scenario for name, r in results.items()},
        "differences": diff,
        "output": str(out),
    }
    (out / "backtest.json").write_text(json.dumps(report, indent=1, sort_keys=True, default=str) + "\n")
    return report


def format_report(report: dict[str, Any], limit: int = 40) -> str:
    """The comparison as text: totals side by side, per-scenario figures, and the decisions that differ."""
    pol = report["policies"]
    lines = [f"backtest {report['first_day']} .. {report['last_day']} ({report['days']} days; {report['approvals']})",
             f"  in force:  policy {pol['in_force']['version']} ({pol['in_force']['digest']})",
             f"  candidate: policy {pol['candidate']['version']} ({pol['candidate']['digest']})", "",
             f"{'':<34}{'in force':>12}{'candidate':>12}"]
    labels = {"promotions": "promotions approved", "demotions": "demotions (fail-safe)",
              "acting_alone": "events acting alone (days 2..)", "failures_unreviewed": "failures out unreviewed",
              "review_hours_off": "review hours off humans"}
    for key, label in labels.items():
        a, b = report["totals"]["in_force"][key], report["totals"]["candidate"][key]
        lines.append(f"{label:<34}{a:>12}{b:>12}" + ("   <- differs" if a != b else ""))
    lines += ["", f"{'scenario':<20}{'final level':>24}{'mean gate':>20}{'coverage':>18}{'unreviewed fail.':>20}{'hours off':>18}"]
    scenarios = sorted(set(report["scenarios"]["in_force"]) | set(report["scenarios"]["candidate"]))
    for s in scenarios:
        a, b = report["scenarios"]["in_force"].get(s, {}), report["scenarios"]["candidate"].get(s, {})
        lines.append(f"{s:<20}{_pair(a.get('final_level'), b.get('final_level')):>24}"
                     f"{_pair(_mean(a.get('gate_thresholds')), _mean(b.get('gate_thresholds'))):>20}"
                     f"{_pair(_mean(a.get('gate_coverages')), _mean(b.get('gate_coverages'))):>18}"
                     f"{_pair(a.get('failures_unreviewed', 0), b.get('failures_unreviewed', 0)):>20}"
                     f"{_pair(a.get('review_hours_off', 0), b.get('review_hours_off', 0)):>18}")
    diff = report["differences"]
    lines += ["", f"decisions that differ: {len(diff)}" + (f" (first {limit}; all in {report['output']}/backtest.json)"
                                                           if len(diff) > limit else "")]
    for d in diff[:limit]:
        subject = f" {d['subject']}" if d["subject"] != d["scenario"] else ""
        lines.append(f"  {d['day']}  {d['kind']:<14} {d['scenario']}{subject}: "
                     f"{d['action'] or '-'} {d['recommended'] or ''} -> {d['action_candidate'] or '-'} {d['recommended_candidate'] or ''}")
    return "\n".join(lines)


def _mean(values: list | None) -> str:
    vals = [v for v in values or [] if v is not None]
    return f"{sum(vals) / len(vals):.3f}" if vals else "-"


def _pair(a: Any, b: Any) -> str:
    return f"{a if a is not None else '-'} / {b if b is not None else '-'}"
