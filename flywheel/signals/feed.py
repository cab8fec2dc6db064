"""The published decision feed the AI product reads, and the human approval commands' logic.

The feed is one JSON file per run (`<publish>/feed/<run_id>.json`) and `<publish>/feed/latest.json`,
each written atomically (temporary file, fsync, rename): a reader sees a whole feed or the previous
one. Per scenario: the approved level (the latest approved promotion or automatic demotion, else
the level the logs show), the recommended level, the confidence gate and audit share that apply at
the approved level, the prompt version to run, and the permission of each tool.

While the window tables of the feed's day are recorded stale (`flywheel.ingest.changed_days`:
computed before an earlier day's data was there or changed, until `refresh_windows` runs), the
feed says so (`stale`: since which day and why) and withholds promotions (autonomy, prompt and
model versions) recommended from them, and every loosening of what the product is told now
(a lower confidence gate, a smaller audit share, a tool allowed more freely: the published value
is kept, listed under the recommendation's `held`); demotions, roll-backs and anything stricter
still go out, and such a promotion cannot be approved until the day is refreshed.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from flywheel.config import Settings
from flywheel.contracts import UNVERSIONED
from flywheel.ingest import changed_days
from flywheel.objectstore import AnyPath, polars_options, url
from flywheel.signals.ledger import append_ledger, decided_ids, effective_levels, read_ledger
from flywheel.store import Layout, exclusive, write_bytes_atomic
from flywheel.tables import DECISIONS

FEED_VERSION = 1
_TOOL_ORDER = {"allow": 0, "require_approval": 1, "disable": 2}


def _read(path: AnyPath) -> pl.DataFrame:
    """A stored Parquet file as a frame, from a local folder or an object store."""
    return pl.read_parquet(url(path), storage_options=polars_options(path))


def decided_days(settings: Settings) -> list[date]:
    """The days with a decision table, in order."""
    folder = Layout(settings.store).root / DECISIONS.path
    days = sorted(p.name.split("=", 1)[1] for p in folder.glob("event_date=*") if (p / "data.parquet").exists()) if folder.is_dir() else []
    return [date.fromisoformat(d) for d in days]


def latest_day(settings: Settings) -> date | None:
    """The latest day with a decision table."""
    days = decided_days(settings)
    return days[-1] if days else None


def load_decisions(settings: Settings, day: date | None = None) -> pl.DataFrame:
    """The decisions of `day` (default: the latest day)."""
    day = day or latest_day(settings)
    if day is None:
        return pl.DataFrame()
    return _read(Layout(settings.store).table(DECISIONS.path, day))


def stale_windows(settings: Settings, day: date) -> changed_days.Stale | None:
    """Why the window tables of `day` are stale (None: they are not)."""
    return changed_days.pending(Layout(settings.store)).stale.get(day)


def build_feed(settings: Settings, run_id: str, day: date | None = None) -> dict[str, Any]:
    """The feed document for the decisions of `day` (default: the latest). While that day's window
    tables are stale, `stale` says since when and why, and promotions are withheld: an autonomy
    promotion's recommended level stays the current one (its recommendation says `withheld`), and
    a version recommended for promotion is not named to run."""
    decisions = load_decisions(settings, day)
    approved = effective_levels(settings)
    stale = stale_windows(settings, decisions["day"][0]) if decisions.height else None
    scenarios: dict[str, dict[str, Any]] = {}
    for r in decisions.filter(pl.col("kind") == "autonomy").iter_rows(named=True) if decisions.height else []:
        entry = approved.get(r["scenario"])
        level = entry["level"] if entry else r["current"]
        withheld = stale is not None and r["action"] == "promote"
        scenarios[r["scenario"]] = {
            "approved_level": level,
            "approved_by": entry["by"] if entry else None,
            "approved_decision_id": entry["decision_id"] if entry else None,
            "recommended_level": r["current"] if withheld else r["recommended"],
            "recommendation": {"decision_id": r["decision_id"], "action": r["action"], "rule": r["rule"],
                               "effect": r["effect"], **({"withheld": "stale_windows"} if withheld else {})},
            "confidence_gate": None, "audit_share": None, "prompt_version": None, "model": None, "tools": {},
        }
    for r in decisions.iter_rows(named=True) if decisions.height else []:
        s = scenarios.get(r["scenario"])
        ev = json.loads(r["evidence"])
        if r["kind"] == "gate" and s is not None and s["approved_level"] == "gated" and ev.get("threshold") is not None:
            s["confidence_gate"] = {"threshold": ev["threshold"], "coverage": ev["coverage"]}
        elif r["kind"] == "audit" and s is not None and s["approved_level"] in ("gated", "autonomous"):
            s["audit_share"] = ev["share"]
    for dim, key in (("prompt_version", "prompt_version"), ("model", "model")):
        for (scenario,), part in (decisions.filter(pl.col("kind") == dim).partition_by("scenario", as_dict=True).items()
                                  if decisions.height else []):
            if scenario in scenarios:
                scenarios[scenario][key] = _version_choice(part, promotions=stale is None)
    tool_rows = decisions.filter(pl.col("kind") == "tool") if decisions.height else decisions
    global_tools = {r["subject"]: r["action"] for r in tool_rows.iter_rows(named=True) if r["scenario"] == "*"} if tool_rows.height else {}
    for r in tool_rows.iter_rows(named=True) if tool_rows.height else []:
        if r["scenario"] in scenarios:
            worst = max(r["action"], global_tools.get(r["subject"], "allow"), key=_TOOL_ORDER.__getitem__)
            scenarios[r["scenario"]]["tools"][r["subject"]] = worst
    if stale is not None:
        _hold_loosening(scenarios, _published_scenarios(settings))
    return {"feed_version": FEED_VERSION, "run_id": run_id,
            "generated_at": datetime.now(timezone.utc).isoformat(),
            "data_day": decisions["day"][0].isoformat() if decisions.height else None,
            "policy_version": decisions["policy_version"][0] if decisions.height else None,
            "stale": None if stale is None else {
                "since": stale.since.isoformat(), "reason": stale.reason,
                "detail": ("an earlier day's data changed after these windows were computed; refresh_windows follows"
                           if stale.reason == "changed" else
                           "an earlier day with staged events is not in the store yet; its run refreshes these windows")},
            "scenarios": dict(sorted(scenarios.items()))}


def _published_scenarios(settings: Settings) -> dict[str, Any]:
    """The scenarios of the feed the product reads now (`latest.json`), or {} when none is published."""
    latest = settings.publish / "feed" / "latest.json"
    try:
        return json.loads(latest.read_bytes()).get("scenarios") or {}
    except (FileNotFoundError, ValueError):
        return {}


def _hold_loosening(scenarios: dict[str, dict[str, Any]], published: dict[str, Any]) -> None:
    """While the windows are stale, nothing the product is told may act more freely than what it is
    told now: a confidence gate keeps the higher threshold, the audit share the larger share, each
    tool the stricter permission of the new and the published feed (a tighter one still goes out at
    once). What was held back is listed under `held` (field: published value)."""
    for name, s in scenarios.items():
        before = published.get(name) or {}
        held: dict[str, Any] = {}
        old_gate, new_gate = before.get("confidence_gate"), s["confidence_gate"]
        if old_gate and new_gate and old_gate.get("threshold") is not None and old_gate["threshold"] > new_gate["threshold"]:
            s["confidence_gate"], held["confidence_gate"] = old_gate, old_gate
        old_share, new_share = before.get("audit_share"), s["audit_share"]
        if old_share is not None and new_share is not None and old_share > new_share:
            s["audit_share"], held["audit_share"] = old_share, old_share
        for tool, action in (before.get("tools") or {}).items():
            new = s["tools"].get(tool)
            if new is not None and action in _TOOL_ORDER and _TOOL_ORDER[action] > _TOOL_ORDER[new]:
                s["tools"][tool] = action
                held.setdefault("tools", {})[tool] = action
        if held:
            s["recommendation"]["held"] = {"reason": "stale_windows", **held}


def _version_choice(part: pl.DataFrame, promotions: bool = True) -> dict[str, Any]:
    """The version to run. Only a real version (never the `unversioned` bucket of records logged
    without one) whose comparison had enough evidence is ever named as a change: the one recommended
    for promotion (unless `promotions` is False: the windows are stale), else the newest kept. With
    no such version, what runs now is kept: the real version with the most events in the window
    that is not rolled back or retired (None if none)."""
    rows = [r | {"ev": json.loads(r["evidence"])} for r in part.to_dicts()]
    real = [r for r in rows if r["subject"] != UNVERSIONED]
    promoted = [r for r in real if r["action"] == "promote" and promotions]
    kept = [r for r in real if r["action"] == "keep"]
    running = [r for r in real if r["action"] not in ("roll_back", "retire")]
    if promoted:
        pick, basis = promoted[0], "promoted"
    elif kept:
        pick, basis = max(kept, key=lambda r: (r["ev"].get("first_seen", ""), r["subject"])), "newest_kept"
    elif running:
        pick, basis = max(running, key=lambda r: (r["ev"].get("events") or r["ev"].get("reviewed") or 0, r["subject"])), "most_traffic"
    else:
        pick, basis = None, "none"
    return {"run": pick["subject"] if pick else None, "basis": basis,
            "roll_back": sorted(r["subject"] for r in rows if r["action"] == "roll_back")}


def publish_feed(settings: Settings, run_id: str) -> Path:
    """Write the feed of the newest decided day for this run and replace `latest.json`, atomically;
    returns the run's file.

    Whatever days a run rebuilt (a backfill of last month, a late review), the feed carries the
    newest day's decisions with the ledger as it is now, so re-running old days never rewinds what
    the product is told; `latest.json` is never replaced by a feed of an older data day (it is left
    as it is, and the run's own file says what this run saw). The feed is built under the feed's
    lock: of runs publishing at once, the last to write `latest.json` read the decisions and the
    record of stale windows after the others, so it never leaves an older view of them there."""
    folder = settings.publish / "feed"
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in run_id)[:80]
    path = folder / f"{safe}.json"
    with exclusive(Layout(settings.store).lock("feed")):
        doc = build_feed(settings, run_id)
        data = json.dumps(doc, indent=1, sort_keys=True, default=str).encode()
        write_bytes_atomic(data, path)
        latest = folder / "latest.json"
        if not _older(doc.get("data_day"), _published_day(latest)):
            write_bytes_atomic(data, latest)
    return path


def _published_day(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("data_day")
    except (OSError, ValueError, AttributeError):
        return None


def _older(day: str | None, published: str | None) -> bool:
    """Whether a feed of data day `day` is older than the one published (None: nothing to compare)."""
    return published is not None and (day is None or day < published)


def pending(settings: Settings) -> pl.DataFrame:
    """Promotions of the latest day still awaiting a human's verdict."""
    decisions = load_decisions(settings)
    if decisions.height == 0:
        return decisions
    done = decided_ids(settings)
    return decisions.filter(pl.col("requires_approval") & ~pl.col("decision_id").is_in(list(done)))


def record_verdict(settings: Settings, decision_id: str, verdict: str, by: str, note: str) -> dict[str, Any]:
    """Record a human's `approved` or `rejected` for a pending decision; raises ValueError otherwise."""
    if verdict not in ("approved", "rejected"):
        raise ValueError(f"verdict must be approved or rejected, got {verdict!r}")
    if not by.strip():
        raise ValueError("--by must name who decided")
    folder = Layout(settings.store).root / DECISIONS.path
    match = None
    for path in sorted(folder.glob("event_date=*/data.parquet"), reverse=True) if folder.is_dir() else []:
        frame = _read(path).filter(pl.col("decision_id") == decision_id)
        if frame.height:
            match = frame.row(0, named=True)
            break
    if match is None:
        raise ValueError(f"no decision {decision_id!r}; `flywheel decisions list` shows the pending ones")
    if not match["requires_approval"]:
        raise ValueError(f"decision {decision_id} ({match['kind']} {match['action']}) does not need approval")
    previous = [e for e in read_ledger(settings) if e["decision_id"] == decision_id]
    if previous:
        raise ValueError(f"decision {decision_id} was already {previous[-1]['verdict']} by {previous[-1]['by']}")
    if verdict == "approved":
        _still_applies(settings, match)
    return append_ledger(settings, {"decision_id": decision_id, "verdict": verdict, "by": by, "note": note,
                                    "kind": match["kind"], "scenario": match["scenario"], "level": match["recommended"],
                                    "previous_level": match["current"], "day": match["day"].isoformat()})


def _still_applies(settings: Settings, decision: dict[str, Any]) -> None:
    """Raise ValueError unless a promotion can still be approved: it is of the newest decided day,
    and its scenario's newest autonomy decision (a re-decided day replaces it), and the level it
    starts from is still the level in force (no demotion, fail-safe or other, has moved it since)."""
    scenario, day = decision["scenario"], decision["day"]
    stale = stale_windows(settings, day)
    if stale is not None:
        raise ValueError(f"decision {decision['decision_id']} ({scenario} {decision['current']} -> {decision['recommended']}, "
                         f"{day}) was computed from stale windows ({stale.reason} since {stale.since}): approve it, "
                         f"or its successor, once refresh_windows has run over {day}")
    last = latest_day(settings)
    if last is not None and last > day:
        raise ValueError(f"decision {decision['decision_id']} ({scenario} {decision['current']} -> {decision['recommended']}, "
                         f"{day}) is stale: {last} has been decided since; `flywheel decisions list` shows what awaits "
                         f"approval now")
    newest = newest_autonomy_decision(settings, scenario)
    if newest is not None and (newest["day"] > day or newest["decision_id"] != decision["decision_id"]):
        raise ValueError(f"decision {decision['decision_id']} ({scenario} {decision['current']} -> {decision['recommended']}, "
                         f"{day}) is stale: the newest decision for {scenario} is {newest['decision_id']} of "
                         f"{newest['day']} ({newest['action']}: {newest['rule']}); approve that one if it is a promotion")
    entry = effective_levels(settings).get(scenario)
    if entry is not None and entry["level"] != decision["current"]:
        raise ValueError(f"decision {decision['decision_id']} promotes {scenario} from {decision['current']}, but its level "
                         f"in force is now {entry['level']} ({entry['verdict']} by {entry['by']}, decision "
                         f"{entry['decision_id']} of {entry.get('day')}): its evidence no longer applies")


def newest_autonomy_decision(settings: Settings, scenario: str) -> dict[str, Any] | None:
    """The autonomy decision of `scenario` on the newest day that decided it, or None."""
    folder = Layout(settings.store).root / DECISIONS.path
    for path in sorted(folder.glob("event_date=*/data.parquet"), reverse=True) if folder.is_dir() else []:
        frame = _read(path)
        if frame.height == 0 or "kind" not in frame.columns:
            continue
        frame = frame.filter((pl.col("kind") == "autonomy") & (pl.col("scenario") == scenario))
        if frame.height:
            return frame.row(0, named=True)
    return None
