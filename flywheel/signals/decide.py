"""One night's decisions for a day: drift, gate evaluations, every recommendation with its
evidence, the day's decision table, the decision log, and automatic fail-safe demotions.

A decision's id is a digest of (day, kind, scenario, subject, action, recommended, policy
digest), so re-running a day gives the same ids and an approval stays attached to its decision.
Promotions wait for a human (`flywheel decisions approve|reject`); demotions take effect at once
when the policy says `demotion.automatic` and are written to the approvals ledger as `automatic`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import polars as pl

from flywheel.config import Settings
from flywheel.signals.autonomy import calibration_gates, evaluate_gates, recommend_levels, window_counts
from flywheel.signals.drift import build_drift, windows
from flywheel.signals.ledger import append_ledger, append_log, decided_ids, last_demotions_before, levels_before
from flywheel.signals.policy import Policy, load_policy
from flywheel.signals.recommend import gate_and_audit, tools, versions
from flywheel.store import Layout, write_bytes_atomic, write_parquet_atomic
from flywheel.tables import DECISIONS


def policy_for(settings: Settings) -> Policy:
    """The policy in force: FLYWHEEL_POLICY, else the package's flywheel/policy/policy.yaml."""
    return load_policy(settings.policy)


def policy_archive(settings: Settings, digest: str) -> Path:
    """Where the text of the policy with `digest` is kept (`<store>/decisions/policies/<digest>.json`)."""
    return Layout(settings.store).root / "decisions" / "policies" / f"{digest}.json"


def archive_policy(settings: Settings, policy: Policy) -> Path:
    """Keep the policy's full text by its digest (once): every decision names the digest, and
    `decisions explain` reloads the policy from this text to recompute it."""
    path = policy_archive(settings, policy.digest())
    if not path.exists():
        text = json.dumps(policy.model_dump(mode="json"), sort_keys=True, indent=1) + "\n"
        write_bytes_atomic(text.encode(), path)
    return path


def load_archived_policy(settings: Settings, digest: str) -> Policy:
    """The policy whose digest is `digest`, from its archived text; ValueError when it was never
    archived or the text no longer gives that digest."""
    path = policy_archive(settings, digest)
    if not path.exists():
        raise ValueError(f"no archived policy text for digest {digest} (decisions made before policies were "
                         f"archived cannot be recomputed from their policy)")
    policy = load_policy(path)
    if policy.digest() != digest:
        raise ValueError(f"the archived policy {path} gives digest {policy.digest()}, not {digest}")
    return policy


def decision_id(day: date, d: dict, digest: str) -> str:
    """The stable id of a decision."""
    key = json.dumps([day.isoformat(), d["kind"], d["scenario"], d["subject"], d["action"], d["recommended"], digest])
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def decide_day(settings: Settings, day: date, run_id: str, policy: Policy | None = None) -> pl.DataFrame:
    """Compute, store and log every decision of `day`; apply automatic demotions. Returns the decisions."""
    policy = policy or policy_for(settings)
    digest = policy.digest()
    archive_policy(settings, policy)
    drift = build_drift(settings, policy, day)
    levels = {s: e["level"] for s, e in levels_before(settings, day).items()}
    w = windows(policy, day)
    gates_frame = evaluate_gates(settings, policy, day, drift, levels)
    counts = window_counts(settings, policy, day)
    decisions = recommend_levels(settings, policy, day, gates_frame, drift, last_demotions_before(settings, day))
    decisions += gate_and_audit(policy, counts, calibration_gates(settings, day), levels)
    decisions += versions(settings, policy, day)
    decisions += tools(settings, policy, day)
    rows = []
    for d in decisions:
        requires = d["kind"] == "autonomy" and d["action"] == "promote"
        automatic = d["kind"] == "autonomy" and d["action"] == "demote" and policy.demotion.automatic
        rows.append({
            "decision_id": decision_id(day, d, digest), "day": day, "kind": d["kind"], "scenario": d["scenario"],
            "subject": d["subject"], "current": d["current"], "recommended": d["recommended"], "action": d["action"],
            "rule": d["rule"], "evidence": json.dumps(_rounded(d["evidence"]), sort_keys=True, default=str),
            "requires_approval": requires,
            "effect": "pending_approval" if requires else "automatic" if automatic else
                      ("approval_required_by_policy" if d["kind"] == "autonomy" and d["action"] == "demote" else "advisory"),
            "policy_version": policy.version, "policy_digest": digest,
            "window_start": w["current_start"], "window_end": day,
            "baseline_start": w["baseline_start"], "baseline_end": w["baseline_end"],
        })
    schema = DECISIONS.polars_schema()
    frame = pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)
    write_parquet_atomic(frame.to_arrow(), Layout(settings.store).table(DECISIONS.path, day))
    append_log(settings, day, run_id, frame)
    done = decided_ids(settings)
    for r in frame.filter(pl.col("effect") == "automatic").iter_rows(named=True):
        if r["decision_id"] not in done:
            append_ledger(settings, {"decision_id": r["decision_id"], "verdict": "automatic", "by": "policy",
                                     "note": f"fail-safe demotion ({r['rule']}), policy {policy.version}",
                                     "kind": "autonomy", "scenario": r["scenario"], "level": r["recommended"],
                                     "previous_level": r["current"], "day": day.isoformat(), "run_id": run_id})
    return frame


def _rounded(value):
    """Floats to 12 significant digits: parallel aggregation may add in another order, and the
    evidence must read the same when a day is recomputed."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value
