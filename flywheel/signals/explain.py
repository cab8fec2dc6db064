"""`flywheel decisions explain ID`: a decision recomputed, to show it reproduces.

Two recomputations, both from the policy text archived under the decision's digest
(`decide.archive_policy`), never from the policy file as it is now:
1. **From its archived inputs** (autonomy decisions): the evidence a decision stores is every input
   of its rule (the window's counts, the calibration's gate, the alerts, the streak, the demotion
   episode), so its gates are evaluated again (`scenario_gates`) and the rule run again
   (`autonomy_rule`); every check, the demotion trigger and the outcome must come out the same.
2. **From the store as it is now** (every kind): the decision's day is decided again in a replay
   store (`backtest.replay_store`) that reads the stored inputs, the gate evaluations of the days
   before, and the approvals ledger as it stood before that day. The same decision id and evidence
   mean nothing it was computed from has changed; a difference names the figures that did (a late
   review rebuilt a day of its window, say).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from flywheel.config import Settings
from flywheel.objectstore import polars_options, url
from flywheel.outcomes.calibration import build_calibration
from flywheel.signals.autonomy import GATE_CHECKS, autonomy_rule, level_up, scenario_gates
from flywheel.signals.backtest import replay_store
from flywheel.signals.decide import decide_day, decision_id, load_archived_policy
from flywheel.signals.ledger import append_ledger, read_ledger
from flywheel.store import Layout
from flywheel.tables import DECISION_LOG, DECISIONS


def find_decision(settings: Settings, wanted: str) -> dict[str, Any]:
    """The decision with id `wanted`: its row in the day's decision table, else its latest copy
    in the decision log. Raises ValueError when there is none."""
    root = Layout(settings.store).root
    for path in sorted((root / DECISIONS.path).glob("event_date=*/data.parquet"), reverse=True):
        frame = pl.read_parquet(url(path), storage_options=polars_options(path))
        if frame.height and "decision_id" in frame.columns:
            hit = frame.filter(pl.col("decision_id") == wanted)
            if hit.height:
                return hit.row(0, named=True)
    for path in sorted((root / DECISION_LOG.path).glob("day=*/*.parquet"), reverse=True):
        hit = pl.read_parquet(url(path), storage_options=polars_options(path)).filter(pl.col("decision_id") == wanted)
        if hit.height:
            return hit.sort("decided_at").row(-1, named=True)
    raise ValueError(f"no decision {wanted!r} in {root / DECISIONS.path} or the decision log")


def replay_rule(decision: dict[str, Any], policy) -> dict[str, Any]:
    """Recompute an autonomy decision from its stored evidence under `policy`: its gates, its
    demotion trigger and its (recommended, rule, action). Returns what was recomputed and whether
    each part matches."""
    ev = json.loads(decision["evidence"])
    current = decision["current"]
    counts = {"events": ev["events"], "reviewed": ev["reviewed"], "accepted": ev["accepted"],
              "severe_failures": ev["severe_failures"], "errors": ev["operational_failures"]}
    gate = {"gate_threshold": ev["gate_threshold"], "gate_coverage": ev["gate_coverage"]}
    alerted = bool(ev["alerts"])
    g = scenario_gates(counts, policy, current, gate, alerted, ev["accept_target"])
    checks = {k: (g[k], ev[k]) for k in (*GATE_CHECKS, "demote_trigger")}
    recommended, rule, action = autonomy_rule(decision["scenario"], g, policy, ev["days_passed"], ev.get("episode"))
    recomputed_id = decision_id(decision["day"], {"kind": "autonomy", "scenario": decision["scenario"],
                                                  "subject": decision["subject"], "action": action,
                                                  "recommended": recommended}, policy.digest())
    outcome = {"recommended": (recommended, decision["recommended"]), "rule": (rule, decision["rule"]),
               "action": (action, decision["action"]), "decision_id": (recomputed_id, decision["decision_id"])}
    return {"checks": checks, "outcome": outcome, "next_level": level_up(current),
            "reproduces": all(a == b for a, b in [*checks.values(), *outcome.values()])}


def recompute_from_store(settings: Settings, decision: dict[str, Any], policy) -> dict[str, Any]:
    """Decide the decision's day again from the stored inputs in a throwaway replay store, with
    the ledger as it stood before that day; returns the recomputed row (or None) and the evidence
    figures that differ from the stored decision."""
    day: date = decision["day"]
    # mkdtemp + rmtree (links removed, never followed), not TemporaryDirectory: its clean-up could
    # change permissions through a link on Python < 3.11.8
    tmp = Path(tempfile.mkdtemp(prefix="flywheel-explain-"))
    try:
        bt = replay_store(settings, tmp / "replay", link_days_before=day)
        for entry in read_ledger(settings):
            if (entry.get("day") or "") < day.isoformat():
                append_ledger(bt, {k: v for k, v in entry.items() if k != "at"})
        build_calibration(bt, day, policy)
        frame = decide_day(bt, day, run_id="explain", policy=policy)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    same = frame.filter((pl.col("kind") == decision["kind"]) & (pl.col("scenario") == decision["scenario"])
                        & (pl.col("subject") == decision["subject"]))
    if same.height == 0:
        return {"row": None, "reproduces": False, "differences": {"decision": "not made on the stored data now"}}
    row = same.row(0, named=True)
    old, new = json.loads(decision["evidence"]), json.loads(row["evidence"])
    diff = {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}
    for k in ("decision_id", "action", "recommended", "rule"):
        if row[k] != decision[k]:
            diff[k] = (decision[k], row[k])
    return {"row": row, "reproduces": not diff, "differences": diff}


def explain(settings: Settings, wanted: str, from_store: bool = True) -> dict[str, Any]:
    """Everything `decisions explain` prints, as a dict."""
    decision = find_decision(settings, wanted)
    policy = load_archived_policy(settings, decision["policy_digest"])
    out: dict[str, Any] = {"decision": {k: v for k, v in decision.items() if k != "evidence"},
                           "evidence": json.loads(decision["evidence"]),
                           "policy": {"version": policy.version, "digest": policy.digest()}}
    if decision["kind"] == "autonomy":
        out["from_archived_inputs"] = replay_rule(decision, policy)
    if from_store:
        out["from_store"] = recompute_from_store(settings, decision, policy)
    return out


def format_explanation(doc: dict[str, Any]) -> str:
    """The explanation as text."""
    d = doc["decision"]
    lines = [f"decision {d['decision_id']}: {d['kind']} {d['scenario']}"
             + (f" {d['subject']}" if d["subject"] != d["scenario"] else "")
             + f" on {d['day']}: {d['action']} ({d['current'] or ''} -> {d['recommended'] or ''}), rule {d['rule']}",
             f"policy {doc['policy']['version']} (digest {doc['policy']['digest']}, from its archived text); "
             f"window {d['window_start']} .. {d['window_end']}, baseline {d['baseline_start']} .. {d['baseline_end']}",
             "evidence: " + ", ".join(f"{k}={v}" for k, v in doc["evidence"].items())]
    rule = doc.get("from_archived_inputs")
    if rule:
        lines.append(f"recomputed from its archived inputs: {'REPRODUCES' if rule['reproduces'] else 'DIFFERS'}")
        for k, (now, stored) in {**rule["checks"], **rule["outcome"]}.items():
            lines.append(f"  {k:<18} {now!s:<40} stored {stored!s:<30} {'ok' if now == stored else 'DIFFERS'}")
    store = doc.get("from_store")
    if store:
        verdict = "REPRODUCES (same id, action and evidence)" if store["reproduces"] else "DIFFERS"
        lines.append(f"recomputed from the stored data now: {verdict}")
        for k, (old, new) in store["differences"].items() if isinstance(store["differences"], dict) else []:
            lines.append(f"  {k}: stored {old} -> now {new}")
    return "\n".join(lines)
