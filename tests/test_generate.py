"""Tests of the sample-data generator (`flywheel.generate`).

The files are re-read here with a small independent reader (stdlib json/csv/gzip + pyarrow) that
classifies every record by the contract, resolves duplicates by id (first copy seen wins) and
recomputes the final outcomes; the generator's truth must agree with that re-count.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import re
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from flywheel.contracts import CLOCK_SKEW_TOLERANCE, CONTRACTS, REASONS, TOOL_STATUSES
from flywheel.generate import FORMATS, feedback, file_format, generate, world
from flywheel.generate.malformed import KINDS
from flywheel.generate.records import SPECS

START = date(2026, 3, 2)
FIELDS = {family: {f.name: f for f in fields} for family, fields in CONTRACTS.items()}
ID = {"events": "event_id", "interventions": "intervention_id"}
_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    landing = tmp_path_factory.mktemp("small") / "landing"
    truth = generate(landing, days=6, events_per_day=300, seed=7, start=START, progress=False)
    return landing, truth


@pytest.fixture(scope="module")
def recount(small: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    return _recount(small[0])


# ----------------------------------------------------------------------------- an independent reader

def _no_constants(token: str) -> Any:
    raise ValueError(f"bare {token} is not JSON")


def _read(path: Path) -> list[tuple[str | None, dict[str, Any] | None]]:
    """(parse-level defect or None, record) of every record in a landing file."""
    if path.name.endswith(".parquet"):
        return [(None, r) for r in pq.read_table(path).to_pylist()]
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    out: list[tuple[str | None, dict[str, Any] | None]] = []
    if ".jsonl" in path.name:
        for line in data.split(b"\n"):
            if not line:
                continue
            try:
                obj = json.loads(line.decode("utf-8"), parse_constant=_no_constants)
            except UnicodeDecodeError:
                out.append(("not_utf8", None))
                continue
            except ValueError:
                out.append(("invalid_json", None))
                continue
            out.append((None, obj) if isinstance(obj, dict) else ("invalid_json", None))
        return out
    rows = list(csv.reader(io.StringIO(data.decode("utf-8", "surrogateescape"), newline="")))
    header = rows[0]
    assert header == list(FIELDS["events" if "events" in path.name else "interventions"])
    for row in rows[1:]:
        if any("\udc80" <= ch <= "\udcff" for cell in row for ch in cell):
            out.append(("not_utf8", None))
        elif len(row) != len(header):
            out.append(("bad_row", None))
        else:
            out.append((None, dict(zip(header, row))))
    return out


def _number(value: Any, loose: bool) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and loose:
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not _TS.match(value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return None


def _json(value: Any, loose: bool) -> Any:
    if isinstance(value, str) and loose:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _problem(family: str, rec: dict[str, Any], loose: bool) -> str | None:
    """The contract defect of a decoded record, or None (reason codes as in contracts.REASONS)."""
    fields = FIELDS[family]
    if any(f.required and rec.get(n) in (None, "") for n, f in fields.items()):
        return "missing_field"
    if family == "interventions" and rec.get("action") == "edited" and rec.get("final_text") in (None, ""):
        return "missing_field"
    present = {n: v for n, v in rec.items() if n in fields and v not in (None, "")}
    for n, v in present.items():
        if fields[n].kind in ("number", "integer"):
            num = _number(v, loose)
            if num is None or (fields[n].kind == "integer" and not num.is_integer()):
                return "wrong_type"
    if _timestamp(rec["occurred_at"]) is None:
        return "bad_timestamp"
    for n, v in present.items():
        f = fields[n]
        if f.kind in ("number", "integer"):
            num = _number(v, loose)
            if (f.minimum is not None and num < f.minimum) or (f.maximum is not None and num > f.maximum):
                return "out_of_range"
    for n, v in present.items():
        if fields[n].kind == "enum" and v not in fields[n].enum:
            return "unknown_enum"
    if family == "events" and rec.get("tool_calls") not in (None, ""):
        if any(c["status"] not in TOOL_STATUSES for c in _json(rec["tool_calls"], loose)):
            return "unknown_enum"
    return None


def _canonical(family: str, rec: dict[str, Any], loose: bool) -> str:
    """The record's content, normalised across formats, for telling exact from conflicting duplicates."""
    out: dict[str, Any] = {}
    for n, f in FIELDS[family].items():
        v = rec.get(n)
        v = None if v == "" else v
        if v is not None and f.kind in ("number", "integer"):
            v = _number(v, loose)
        elif v is not None and f.kind in ("object", "tool_calls"):
            v = _json(v, loose)
        elif v is not None and f.kind == "json":
            parsed = _json(v, loose)
            v = parsed if isinstance(parsed, dict) else v
        if f.kind == "tool_calls" and v is not None:
            v = [{**c, "arguments": _json(c["arguments"], True)} for c in v]
        out[n] = v
    return json.dumps(out, sort_keys=True)


def _recount(landing: Path) -> dict[str, Any]:
    """Re-read every landing file: defects, exact duplicates, records, and the kept valid records."""
    found: dict[str, Counter[str]] = {"events": Counter(), "interventions": Counter()}
    dups: Counter[str] = Counter()
    records: Counter[str] = Counter()
    kept: dict[str, dict[str, tuple[str, dict[str, Any], str]]] = {"events": {}, "interventions": {}}
    for family in ("events", "interventions"):
        for path in sorted((landing / family).iterdir()):
            loose = ".jsonl" not in path.name
            for defect, rec in _read(path):
                records[family] += 1
                defect = defect or _problem(family, rec, loose)
                if defect:
                    found[family][defect] += 1
                    continue
                key, content = rec[ID[family]], _canonical(family, rec, loose)
                if key not in kept[family]:
                    kept[family][key] = (content, rec, path.name)
                elif kept[family][key][0] == content:
                    dups[family] += 1
                else:
                    found[family]["conflicting_duplicate"] += 1
    for key, (_, rec, _) in list(kept["interventions"].items()):
        event = kept["events"].get(rec["event_id"])
        assert event is not None, "every intervention points at a valid event"
        if _timestamp(rec["occurred_at"]) < _timestamp(event[1]["occurred_at"]) - CLOCK_SKEW_TOLERANCE:
            found["interventions"]["intervention_before_event"] += 1
            del kept["interventions"][key]
    return {"found": found, "dups": dups, "records": records, "kept": kept}


def _sha(landing: Path) -> dict[str, str]:
    return {p.relative_to(landing).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(landing.rglob("*")) if p.is_file()}


def _final_outcomes(kept: dict[str, dict[str, tuple[str, dict[str, Any], str]]]) -> dict[str, str]:
    latest: dict[str, tuple[datetime, dict[str, Any]]] = {}
    for _, rec, _ in kept["interventions"].values():
        t = _timestamp(rec["occurred_at"])
        if rec["event_id"] not in latest or t > latest[rec["event_id"]][0]:
            latest[rec["event_id"]] = (t, rec)
    out = {}
    for event_id, (_, ev, _) in kept["events"].items():
        if event_id not in latest:
            out[event_id] = "unreviewed"
            continue
        iv = latest[event_id][1]
        changed = iv["action"] == "accepted" and iv.get("final_text") not in (None, "") and iv["final_text"] != ev["output_text"]
        out[event_id] = "edited" if changed else iv["action"]
    return out


# ----------------------------------------------------------------------------- tests

def test_deterministic_byte_identical_and_progress_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = generate(tmp_path / "a", days=4, events_per_day=200, seed=3, start=START, progress=True)
    assert "generating" in capsys.readouterr().err
    b = generate(tmp_path / "b", days=4, events_per_day=200, seed=3, start=START, progress=False)
    generate(tmp_path / "c", days=4, events_per_day=200, seed=4, start=START, progress=False)
    assert a == b
    assert _sha(tmp_path / "a") == _sha(tmp_path / "b")
    assert _sha(tmp_path / "a") != _sha(tmp_path / "c")
    # A second run into the same folder replaces the files (and leaves no stale copies behind).
    generate(tmp_path / "a", days=4, events_per_day=200, seed=3, start=START, progress=False)
    assert _sha(tmp_path / "a") == _sha(tmp_path / "b")


def test_every_format_present_and_listed(small: tuple[Path, dict[str, Any]]) -> None:
    landing, truth = small
    for family in ("events", "interventions"):
        names = sorted(p.name for p in (landing / family).iterdir())
        assert len(names) == 6
        assert {n.split(".", 1)[1] for n in names} == set(FORMATS)
        assert [n[len(family) + 1:len(family) + 11] for n in names] == [(START + timedelta(days=d)).isoformat() for d in range(6)]
    listed = {f["path"]: f for f in truth["files"]}
    assert set(listed) == {p.relative_to(landing).as_posix() for p in landing.glob("*/*")}
    for rel, f in listed.items():
        assert f["format"] == rel.split(".", 1)[1]
        assert f["records"] == len(_read(landing / rel))


def test_format_rotation_mostly_gzip_and_complete_from_four_days() -> None:
    for family in ("events", "interventions"):
        assert {file_format(family, d) for d in range(4)} == set(FORMATS)
        month = Counter(file_format(family, d) for d in range(30))
        assert set(month) == set(FORMATS)
        assert month["jsonl.gz"] > 15


def test_malformed_kinds_all_present_and_match_recount(small: tuple[Path, dict[str, Any]], recount: dict[str, Any]) -> None:
    truth = small[1]
    for family in ("events", "interventions"):
        expected = truth["malformed"][family]
        assert set(expected) == set(KINDS[family]) and set(KINDS[family]) <= set(REASONS)
        assert all(n > 0 for n in expected.values()), expected
        assert dict(recount["found"][family]) == expected


def test_record_counts_reconcile(small: tuple[Path, dict[str, Any]], recount: dict[str, Any]) -> None:
    truth = small[1]
    counts = truth["counts"]
    assert counts["events_valid"] == 6 * 300 == len(recount["kept"]["events"])
    assert counts["interventions_valid"] == len(recount["kept"]["interventions"])
    assert recount["dups"]["events"] == counts["event_exact_duplicates"] > 0
    assert recount["dups"]["interventions"] == counts["intervention_exact_duplicates"] > 0
    for family, dup_key in (("events", "event_exact_duplicates"), ("interventions", "intervention_exact_duplicates")):
        listed = sum(f["records"] for f in truth["files"] if f["family"] == family)
        assert recount["records"][family] == listed == (
            counts[f"{family}_valid"] + counts[dup_key] + sum(truth["malformed"][family].values()))


def test_late_deliveries_and_early_interventions(small: tuple[Path, dict[str, Any]], recount: dict[str, Any]) -> None:
    counts = small[1]["counts"]
    kept = recount["kept"]
    file_day = {key: name.split("-", 1)[1][:10] for key, (_, _, name) in kept["events"].items()}
    late = [k for k, (_, rec, _) in kept["events"].items()
            if _timestamp(rec["occurred_at"]).date().isoformat() != file_day[k]]
    assert len(late) == counts["events_delivered_late"] > 0
    early = [1 for _, rec, name in kept["interventions"].values() if name.split("-", 1)[1][:10] < file_day[rec["event_id"]]]
    assert len(early) == counts["interventions_delivered_before_their_event"]
    changed = [1 for _, rec, _ in kept["interventions"].values()
               if rec["action"] == "accepted" and rec.get("final_text") not in (None, "")
               and rec["final_text"] != kept["events"][rec["event_id"]][1]["output_text"]]
    assert len(changed) == counts["accepted_with_changed_text"] > 0
    for _, rec, name in kept["interventions"].values():  # delivered on the UTC day it occurred
        assert _timestamp(rec["occurred_at"]).date().isoformat() == name.split("-", 1)[1][:10]


def test_labels_and_outcomes_agree_with_the_files(small: tuple[Path, dict[str, Any]], recount: dict[str, Any]) -> None:
    landing, truth = small
    labels = pl.read_parquet(landing / "truth_labels.parquet")
    assert labels.columns == ["event_id", "event_date", "scenario", "model", "prompt_version", "final_outcome", "failure_mode"]
    assert labels["event_id"].n_unique() == labels.height == len(recount["kept"]["events"])
    recomputed = _final_outcomes(recount["kept"])
    assert dict(zip(labels["event_id"], labels["final_outcome"])) == recomputed
    tallied = labels.group_by("scenario", "event_date", "final_outcome").len()
    from_truth = {(s, d, o): n for s, by_day in truth["outcomes"].items() for d, by in by_day.items() for o, n in by.items() if n}
    assert {(r[0], r[1].isoformat(), r[2]): r[3] for r in tallied.iter_rows()} == from_truth
    assert set(labels["final_outcome"]) == set(world.FINAL_OUTCOMES)
    events = {k: v[1] for k, v in recount["kept"]["events"].items()}
    for row in labels.head(300).iter_rows(named=True):
        ev = events[row["event_id"]]
        assert (row["scenario"], row["model"]) == (ev["scenario"], ev["model"])
        assert row["prompt_version"] == (ev.get("prompt_version") or "unversioned")


def test_world_shape(small: tuple[Path, dict[str, Any]], recount: dict[str, Any]) -> None:
    truth = small[1]
    assert len(truth["scenarios"]) >= 8 and len(truth["models"]) >= 2 and len(truth["prompt_versions"]) >= 3
    assert {s["autonomy_level"] for s in truth["scenarios"].values()} == {"shadow", "assist", "gated", "autonomous"}
    assert sum(1 for m in truth["failure_modes"] if m["kind"] == "content") >= 6
    events = [rec for _, rec, _ in recount["kept"]["events"].values()]
    assert {e["scenario"] for e in events} == set(truth["scenarios"])
    assert {e["status"] for e in events} == {"ok", "error", "timeout", "fallback"}
    for e in events:
        dp = _json(e["decision_path"], True) if isinstance(e["decision_path"], str) else e["decision_path"]
        if isinstance(dp, dict):
            assert dp["route"] in ("shadow", "human_review", "auto", "fallback_human")
            if e["autonomy_level"] == "gated" and dp["route"] in ("auto", "human_review") and e["status"] == "ok":
                assert (float(e["confidence"]) >= dp["gate"]) == (dp["route"] == "auto")
        if e["status"] in ("error", "timeout"):
            assert e["output_text"] in (None, "")
    actions = Counter(rec["action"] for _, rec, _ in recount["kept"]["interventions"].values())
    assert set(actions) == set(world.FINAL_OUTCOMES) - {"unreviewed"}
    edited = [rec for _, rec, _ in recount["kept"]["interventions"].values() if rec["action"] == "edited"]
    assert all(rec["final_text"] != recount["kept"]["events"][rec["event_id"]][1]["output_text"] for rec in edited)


def test_regression_after_rollout(tmp_path: Path) -> None:
    truth = generate(tmp_path, days=8, events_per_day=2000, seed=5, start=START, progress=False)
    reg = truth["regression"]
    assert reg["rates_before"]["accepted"] - reg["rates_after"]["accepted"] > 0.2
    labels = pl.read_parquet(tmp_path / "truth_labels.parquet").filter(pl.col("final_outcome") != "unreviewed")
    rollout = date.fromisoformat(reg["rollout_date"])

    def accept_rate(scenario: str, after: bool) -> float:
        part = labels.filter(pl.col("scenario") == scenario, (pl.col("event_date") > rollout) == after)
        assert part.height > 200
        return (part["final_outcome"] == "accepted").mean()

    assert accept_rate(reg["scenario"], False) - accept_rate(reg["scenario"], True) > 0.15
    for other in ("sql_generation", "code_review"):  # unchanged by v3
        assert abs(accept_rate(other, False) - accept_rate(other, True)) < 0.08


def test_the_world_earns_its_autonomy_levels() -> None:
    """In the steady state (exact, from the world's model) the scenarios the AI runs alone accept
    ~95% of reviewed drafts as-is with 1-3% severe failures (rejected, reverted, error; over all
    events) and rare reverts; sql_generation is good and big enough to be promoted; at least two
    assist/shadow scenarios stay clearly below the promotion target; the emerging failure mode at
    its plateau clearly worsens the scenarios it hits."""
    from flywheel.generate.expected import path_masses, reviewed_outcome_truth

    probs = reviewed_outcome_truth(30, None, str, changes=False)["reviewed_outcome_probs"]

    def severe_and_reverted(s: world.Scenario, emerging: float = 0.0) -> tuple[float, float, float]:
        severe = reverted = reviewed_accepted = reviewed = 0.0
        for name, share in s.models.items():
            m = world.MODELS[world.MODEL_INDEX[name]]
            total = sum(path_masses(s, s.probs, emerging, m).values())
            severe += share * (s.status_rates[0] * m.error_multiplier + total[2] + total[4])
            reverted += share * total[4]
            reviewed_accepted += share * total[0]
            reviewed += share * total.sum()
        return severe, reverted, reviewed_accepted / reviewed

    for s in world.SCENARIOS:
        accepted = probs[s.name]["all"]["accepted"]
        severe, reverted, _ = severe_and_reverted(s)
        if s.autonomy in ("gated", "autonomous"):
            assert 0.93 <= accepted <= 0.97 and 0.005 <= severe <= 0.03, (s.name, accepted, severe)
            assert reverted <= 0.01, s.name
    sql = world.SCENARIOS[world.SCENARIO_INDEX["sql_generation"]]
    assert sql.autonomy == "assist" and sql.share >= 0.08
    assert probs["sql_generation"]["all"]["accepted"] >= 0.965 and severe_and_reverted(sql)[0] <= 0.02
    weak = [s.name for s in world.SCENARIOS if s.autonomy in ("assist", "shadow") and probs[s.name]["all"]["accepted"] < 0.8]
    assert len(weak) >= 2
    for name in world.EMERGING_SCENARIOS:
        s = world.SCENARIOS[world.SCENARIO_INDEX[name]]
        severe, reverted, accepted = severe_and_reverted(s, world.EMERGING_RATE_MAX)
        assert accepted < 0.8 and severe > 0.1, name
    kb = world.SCENARIOS[world.SCENARIO_INDEX[world.REGRESSED_SCENARIO]]
    assert (kb.probs, kb.probs_v3) == ((0.78, 0.08, 0.05, 0.05, 0.04), (0.47, 0.10, 0.12, 0.23, 0.08))


def test_without_changes_the_world_stays_as_it_was(tmp_path: Path) -> None:
    """changes=False: v3 rolls out with v2's rates (kb_answer does not regress), the emerging failure
    mode never appears, truth.json says so, and the reviewed shares still match the truth. The same
    seed gives the same world up to the changes: the files of the days before the rollout are identical."""
    kw = dict(days=6, events_per_day=5000, seed=5, start=START, progress=False)
    changed = generate(tmp_path / "changed", **kw)
    stable = generate(tmp_path / "stable", changes=False, **kw)
    again = generate(tmp_path / "again", changes=False, **kw)
    assert stable == again and _sha(tmp_path / "stable") == _sha(tmp_path / "again")
    assert changed["changes"] is True and changed["regression"] and changed["emerging_failure_mode"]
    assert stable["changes"] is False and stable["regression"] is None and stable["emerging_failure_mode"] is None
    assert set(stable["reviewed_outcome_probs_segments"].values()) == {"all"}
    assert all("outcome_probs_v3" not in s for s in stable["scenarios"].values())
    assert [m["scenarios"] for m in stable["failure_modes"] if m["name"] == world.EMERGING_MODE] == [[]]
    assert stable["prompt_versions"]["v3"] == changed["prompt_versions"]["v3"]  # v3 is still rolled out

    rollout = START + timedelta(days=changed["regression"]["rollout_day"])
    before = {k: v for k, v in _sha(tmp_path / "stable").items() if k.split("-", 1)[-1][:10] < rollout.isoformat()}
    assert len(before) == 2 * changed["regression"]["rollout_day"]
    assert before.items() <= _sha(tmp_path / "changed").items()

    def reviewed(folder: str) -> pl.DataFrame:
        return pl.read_parquet(tmp_path / folder / "truth_labels.parquet").filter(pl.col("final_outcome") != "unreviewed")

    assert reviewed("changed").filter(pl.col("failure_mode") == world.EMERGING_MODE).height > 0
    assert pl.read_parquet(tmp_path / "stable" / "truth_labels.parquet").filter(
        pl.col("failure_mode") == world.EMERGING_MODE).height == 0

    def kb_accept(folder: str, version: str) -> tuple[float, int]:
        part = reviewed(folder).filter(pl.col("scenario") == world.REGRESSED_SCENARIO, pl.col("prompt_version") == version)
        return (part["final_outcome"] == "accepted").mean(), part.height

    (v2, n2), (v3, n3) = kb_accept("stable", "v2"), kb_accept("stable", "v3")
    assert n2 > 500 and n3 > 500
    assert abs(v3 - v2) < 4 * (v2 * (1 - v2) * (1 / n2 + 1 / n3)) ** 0.5
    assert kb_accept("changed", "v2")[0] - kb_accept("changed", "v3")[0] > 0.15

    outcomes = ("accepted", "edited", "rejected", "escalated", "reverted")
    complete = stable["reviewed_outcome_probs_complete_through"]
    labels = reviewed("stable").with_columns(pl.col("event_date").cast(pl.String).alias("date"))
    daily = labels.group_by("scenario", "date").agg(pl.len().alias("n"), *[(pl.col("final_outcome") == o).sum().alias(o)
                                                                           for o in outcomes])

    def exact(row: dict[str, Any]) -> dict[str, float]:
        if row["date"] <= complete:
            return stable["reviewed_outcome_probs"][row["scenario"]]["all"]
        return stable["reviewed_outcome_probs_censored"][row["date"]][row["scenario"]]["all"]

    assert _misfits(daily, exact) == []


def test_emerging_failure_mode_appears_late_and_grows(small: tuple[Path, dict[str, Any]], recount: dict[str, Any]) -> None:
    landing, truth = small
    em = truth["emerging_failure_mode"]
    labels = pl.read_parquet(landing / "truth_labels.parquet")
    hit = labels.filter(pl.col("failure_mode") == em["name"])
    first = date.fromisoformat(em["first_date"])
    assert hit.height > 0 and hit["event_date"].min() >= first
    assert set(hit["scenario"]) <= set(em["scenarios"])
    assert labels.filter(pl.col("event_date") < first, pl.col("failure_mode") == em["name"]).height == 0
    daily = [em["daily_share"][d] for d in sorted(em["daily_share"])]
    assert daily == sorted(daily) and daily[0] > 0
    # Its reviewer codes (pii/privacy/security) never show up on events from before the first day.
    day_of = dict(zip(labels["event_id"], labels["event_date"]))
    codes = [day_of[rec["event_id"]] for _, rec, _ in recount["kept"]["interventions"].values()
             if rec.get("reason_code") in feedback.MODE_REASON_CODES[em["name"]]]
    assert codes and min(codes) >= first


def test_confidence_predicts_acceptance(small: tuple[Path, dict[str, Any]], recount: dict[str, Any]) -> None:
    labels = pl.read_parquet(small[0] / "truth_labels.parquet")
    outcome = dict(zip(labels["event_id"], labels["final_outcome"]))
    pairs = [(float(rec["confidence"]), outcome[k] == "accepted") for k, (_, rec, _) in recount["kept"]["events"].items()
             if rec["autonomy_level"] == "assist" and rec.get("confidence") not in (None, "") and outcome[k] != "unreviewed"]
    conf = np.array([c for c, _ in pairs])
    acc = np.array([a for _, a in pairs])
    assert acc[conf >= 0.75].mean() > acc[conf < 0.5].mean() + 0.25


def test_comment_templates_fill_from_every_scenario_that_uses_them() -> None:
    rng = np.random.default_rng(0)
    for s in world.SCENARIOS:
        row = {k: v[0] for k, v in SPECS[s.name].slots(rng, 1).items()}
        modes = set(s.modes) | set(s.modes_v3 or {}) | ({world.EMERGING_MODE} if s.name in world.EMERGING_SCENARIOS else set())
        for scenario, mode, template in feedback.all_comment_templates():
            if mode in modes and scenario in (None, s.name):
                assert "{" not in template.format_map(row), (s.name, template)
        for mode in modes:
            for k in range(12):
                assert feedback.mode_comment(s.name, mode, row, k)


def test_default_start_ends_yesterday(tmp_path: Path) -> None:
    before = datetime.now(timezone.utc).date()
    truth = generate(tmp_path, days=2, events_per_day=20, seed=1, progress=False)
    today = before if truth["end"] == (before - timedelta(days=1)).isoformat() else datetime.now(timezone.utc).date()
    assert truth["end"] == (today - timedelta(days=1)).isoformat()
    assert truth["start"] == (today - timedelta(days=2)).isoformat()
    assert truth["counts"]["events_valid"] == 40


# ----------------------------------------------------------------------------- expected reviewed shares

def _segment_expr(truth: dict[str, Any]) -> pl.Expr:
    """Each labelled event's segment of reviewed_outcome_probs, by its scenario's segment rule."""
    by = truth["reviewed_outcome_probs_segments"]
    of = lambda rule: [s for s, r in by.items() if r == rule]  # noqa: E731
    return (pl.when(pl.col("scenario").is_in(of("prompt_version"))).then(pl.col("prompt_version"))
            .when(pl.col("scenario").is_in(of("event_date"))).then(pl.col("date"))
            .otherwise(pl.lit("all")).alias("segment"))


def _misfits(cells: pl.DataFrame, expected: Callable[[dict[str, Any]], dict[str, float]],
             sigmas: float = 4.0) -> list[tuple]:
    """Cells (one row per key with `n` reviewed events and a count per outcome) whose count of some
    outcome is as unlikely under Binomial(n, expected(row)) as a normal deviate beyond `sigmas`: the
    exact two-sided tail, so the skew of rare outcomes (a few per mille) does not count against them.
    An impossible outcome must not occur at all. Outcomes with fewer than 5 expected events either way
    are not judged."""
    from scipy.stats import binom

    limit = math.erfc(sigmas / math.sqrt(2))
    bad = []
    for row in cells.iter_rows(named=True):
        want = expected(row)
        n = row["n"]
        for outcome, p in want.items():
            k = row[outcome]
            if p == 0.0:
                if k:
                    bad.append((row, outcome, k, p))
            elif n * p >= 5 and n * (1 - p) >= 5 and 2 * min(binom.cdf(k, n, p), binom.sf(k - 1, n, p)) < limit:
                bad.append((row, outcome, k / n, p))
    return bad


def test_reviewed_outcome_shares_match_the_truth(tmp_path: Path) -> None:
    """A large sample's shares of final outcomes among reviewed events (final_outcome != unreviewed,
    which test_labels_and_outcomes_agree_with_the_files ties to the intervention files) agree with
    reviewed_outcome_probs on complete dates and with reviewed_outcome_probs_censored on the last
    ones, per scenario x segment x date, per model, and pooled; the naive latent probabilities and
    the uncensored values on the last date are rejected, so the check has teeth."""
    days = 8
    truth = generate(tmp_path, days=days, events_per_day=60_000, seed=11, start=START, progress=False)
    outcomes = ("accepted", "edited", "rejected", "escalated", "reverted")
    probs, censored = truth["reviewed_outcome_probs"], truth["reviewed_outcome_probs_censored"]
    dates = [(START + timedelta(days=d)).isoformat() for d in range(days)]
    complete = truth["reviewed_outcome_probs_complete_through"]
    assert complete == dates[days - 1 - int(world.MAX_REVIEW_DAYS)] and sorted(censored) == [d for d in dates if d > complete]
    assert truth["reviewed_outcome_probs_segments"] == {
        s.name: "prompt_version" if s.probs_v3 else "event_date" if s.name in world.EMERGING_SCENARIOS else "all"
        for s in world.SCENARIOS}
    for scenario, segs in probs.items():
        rule = truth["reviewed_outcome_probs_segments"][scenario]
        assert set(segs) == {"all": {"all"}, "prompt_version": {"v1", "v2", "v3", "unversioned"}, "event_date": set(dates)}[rule]
        for seg, rates in segs.items():
            tables = [rates, *truth["reviewed_outcome_probs_by_model"][scenario][seg].values()]
            tables += [censored[d][scenario][seg] for d in censored if seg in censored[d][scenario]]
            for t in tables:
                assert set(t) == set(outcomes) and abs(sum(t.values()) - 1) < 1e-9 and min(t.values()) >= 0
            assert set(truth["reviewed_outcome_probs_by_model"][scenario][seg]) == set(truth["scenarios"][scenario]["models"])
    on_disk = json.loads((tmp_path / "truth.json").read_text())
    assert {k: on_disk[k] for k in truth if k.startswith("reviewed_outcome_probs")} == {
        k: v for k, v in truth.items() if k.startswith("reviewed_outcome_probs")}
    reg = truth["regression"]
    assert probs[reg["scenario"]]["v3"]["accepted"] < probs[reg["scenario"]]["v2"]["accepted"] - 0.2

    labels = (pl.read_parquet(tmp_path / "truth_labels.parquet")
              .filter(pl.col("final_outcome") != "unreviewed")
              .with_columns(pl.col("event_date").cast(pl.String).alias("date")))
    labels = labels.with_columns(_segment_expr(truth), (pl.col("date") <= complete).alias("complete"))

    def cells(keys: list[str], frame: pl.DataFrame = labels) -> pl.DataFrame:
        wide = frame.group_by(keys).agg(pl.len().alias("n"), *[(pl.col("final_outcome") == o).sum().alias(o) for o in outcomes])
        return wide.sort(keys)

    daily = cells(["scenario", "segment", "date"])
    assert daily["n"].sum() == labels.height > 100_000

    def exact(row: dict[str, Any]) -> dict[str, float]:
        if row["date"] <= complete:
            return probs[row["scenario"]][row["segment"]]
        return censored[row["date"]][row["scenario"]][row["segment"]]

    assert _misfits(daily, exact) == []
    judged = daily.filter(pl.col("n") >= 300)
    assert judged.height >= 60 and set(judged["scenario"]) == set(probs)
    pooled = cells(["scenario", "segment"], labels.filter(pl.col("complete")))
    assert _misfits(pooled, lambda r: probs[r["scenario"]][r["segment"]]) == []
    per_model = cells(["scenario", "segment", "model"], labels.filter(pl.col("complete")))
    assert _misfits(per_model, lambda r: truth["reviewed_outcome_probs_by_model"][r["scenario"]][r["segment"]][r["model"]]) == []

    # The check can fail: it rejects the latent outcome probabilities of ok events, and the
    # uncensored values on the last date.
    def latent(row: dict[str, Any]) -> dict[str, float]:
        s = truth["scenarios"][row["scenario"]]
        p = s["outcome_probs_v3"] if row["segment"] == "v3" else s["outcome_probs"]
        return {"accepted": p["accepted"], "edited": p["edited"], "rejected": p["rejected"], "escalated": p["escalated"],
                "reverted": 0.0}

    assert len({r["scenario"] for r, *_ in _misfits(pooled, latent)}) >= 7
    last = daily.filter(pl.col("date") == dates[-1])
    assert len({r["scenario"] for r, *_ in _misfits(last, lambda r: probs[r["scenario"]][r["segment"]])}) >= 5
    # A confidence bias moves more of one model's good drafts past the gate, out of the reviewed set.
    copy = {m: r["accepted"] for m, r in truth["reviewed_outcome_probs_by_model"]["product_copy"]["all"].items()}
    assert copy["gpt-4o-2024-08-06"] - copy["llama-3.1-70b-instruct"] > 0.005
