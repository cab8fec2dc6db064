"""The pulling framework (flywheel/sources/pull.py) and the verdict rules (flywheel/sources/verdicts.py):
idempotent landing, the high-water mark and its windows, reconciliation, quarantine, the rules."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from flywheel.config import Settings
from flywheel.sources import SourcesError, load_sources
from flywheel.sources.pull import Pulled, Window, load_state, pull, source_dir
from flywheel.sources.verdicts import (
    Annotation,
    FieldCandidate,
    PullSource,
    candidate_value,
    parse_duration,
    pull_config,
    to_intervention,
)

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)


def _config(**over: Any) -> PullSource:
    doc: dict[str, Any] = {
        "overlap": "1h", "annotation_lookback": "2d", "event_types": ["GEN"], "annotators": ["HUMAN"],
        "fields": {"scenario": [{"path": "x.scenario"}], "model": [], "prompt_version": [], "confidence": [],
                   "autonomy_level": [{"default": "assist"}]},
        "interventions": [
            {"name": "review", "labels": {"Accepted": "accepted", "rejected": "rejected"}},
            {"name": "ok", "booleans": {True: "accepted", False: "rejected"}},
            {"name": "quality", "scores": [{"min": 0.8, "action": "accepted"}, {"min": 0.3, "max": 0.8, "action": "escalated"}]},
            {"name": "fix", "correction": "edited"},
        ],
    }
    doc.update(over)
    return PullSource.model_validate(doc)


def _event(i: int, at: datetime, version: str = "1") -> Pulled:
    record = {"event_id": f"e{i}", "occurred_at": at.isoformat(), "scenario": "s", "model": "m",
              "autonomy_level": "assist", "status": "ok"}
    return Pulled("events", f"e{i}", version, at, record=record)


def _review(i: int, at: datetime, action: str, version: str = "1") -> Pulled:
    record = {"intervention_id": f"r{i}@{version}", "event_id": f"e{i}", "occurred_at": at.isoformat(),
              "action": action}
    return Pulled("interventions", f"r{i}", version, at, record=record)


class FakeSource:
    """Yields a fixed list of records, filtered by the window as a real source's query would be."""

    name = "fake"

    def __init__(self, items: list[Pulled]) -> None:
        self.items = items
        self.windows: list[Window] = []

    def fetch(self, window: Window) -> Iterable[Pulled]:
        self.windows.append(window)
        for item in self.items:
            since = window.events_since if item.kind == "events" else window.annotations_since
            if since is None or item.at is None or item.at >= since:
                yield item


def _settings(tmp_path: Path) -> Settings:
    return Settings(landing=tmp_path / "landing", store=tmp_path / "store", db=tmp_path / "db.duckdb")


def _landed(settings: Settings, kind: str) -> list[dict[str, Any]]:
    return [json.loads(line) for p in sorted((settings.landing / kind / "fake").glob("*.jsonl"))
            for line in p.read_text().splitlines()]


def test_a_pull_lands_reconciles_and_a_repull_writes_nothing(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    bad = Pulled("interventions", "r9", "1", T0, reason="no_rule", detail="name 'x'", raw={"authorUserId": "ana"})
    source = FakeSource([_event(1, T0), _event(2, T0 + timedelta(hours=2)), _review(1, T0, "accepted"), bad,
                         _event(1, T0)])  # e1 twice in one pull: the second is a duplicate
    first = pull(s, source, _config())
    assert (first.fetched["events"], first.landed["events"], first.duplicates["events"]) == (3, 2, 1)
    assert (first.fetched["interventions"], first.landed["interventions"], first.quarantined["interventions"]) == (2, 1, 1)
    assert first.reasons == {"no_rule": 1} and first.reconciles()
    assert first.hwm_after == "2026-11-20T11:00:00Z"
    assert [e["event_id"] for e in _landed(s, "events")] == ["e1", "e2"]
    [q] = [json.loads(line) for p in (source_dir(s, "fake") / "quarantine").glob("*.jsonl") for line in p.read_text().splitlines()]
    assert (q["record_id"], q["reason"], q["detail"]) == ("r9", "no_rule", "name 'x'")
    assert q["raw"]["authorUserId"].startswith("r_") and q["raw"]["authorUserId"] != "ana"

    files = sorted(p.name for p in tmp_path.rglob("*.jsonl"))
    second = pull(s, source, _config())
    assert second.files == [] and sorted(p.name for p in tmp_path.rglob("*.jsonl")) == files
    assert (second.landed + second.quarantined) == {} and second.reconciles()
    # the window: events from the mark minus 1h (e1 at 09:00 is not asked for), annotations minus 2 days
    assert source.windows[1] == Window(T0 + timedelta(hours=1), T0 + timedelta(hours=2) - timedelta(days=2))
    assert (second.fetched["events"], second.duplicates["events"]) == (1, 1)
    assert (second.fetched["interventions"], second.duplicates["interventions"]) == (2, 2)


def test_a_changed_annotation_lands_again_and_a_fixed_quarantine_lands(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    bad = Pulled("interventions", "r2", "1", T0, reason="unknown_label", detail="", raw={})
    pull(s, FakeSource([_event(1, T0), _review(1, T0, "accepted"), bad]), _config())
    later = T0 + timedelta(minutes=5)
    report = pull(s, FakeSource([_event(1, T0), _review(1, later, "rejected", version="2"),
                                 _review(2, T0, "accepted")]), _config())
    assert (report.landed["interventions"], report.duplicates["events"], report.quarantined["interventions"]) == (2, 1, 0)
    # the new version is a new intervention (its later occurred_at wins the outcome); the fixed record lands
    assert sorted((r["intervention_id"], r["action"]) for r in _landed(s, "interventions")) == [
        ("r1@1", "accepted"), ("r1@2", "rejected"), ("r2@1", "accepted")]
    assert load_state(s, "fake")["quarantined"] == {}


def test_the_same_records_with_a_lost_state_make_no_new_file(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    items = [_event(1, T0), _review(1, T0, "accepted")]
    pull(s, FakeSource(items), _config())
    before = {p: p.stat().st_mtime_ns for p in s.landing.rglob("*.jsonl")}
    (source_dir(s, "fake") / "state.json").unlink()
    report = pull(s, FakeSource(items), _config())
    assert report.landed["events"] == 1 and report.files == []  # same bytes, same name: not written again
    assert {p: p.stat().st_mtime_ns for p in s.landing.rglob("*.jsonl")} == before


def test_full_ignores_the_mark_and_the_state_forgets_what_no_window_reaches(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    pull(s, FakeSource([_event(1, T0), _event(2, T0 + timedelta(days=5))]), _config())
    state = load_state(s, "fake")
    assert sorted(state["seen"]) == ["events\x1fe2"]  # e1 is 5 days before the mark: beyond overlap and lookback
    source = FakeSource([_event(2, T0 + timedelta(days=5))])
    pull(s, source, _config(), full=True)
    assert source.windows == [Window(None, None)]


def test_pull_counts_reconcile_per_kind_whatever_mix() -> None:
    from flywheel.sources.pull import PullReport

    r = PullReport("x")
    r.fetched.update({"events": 3})
    r.landed.update({"events": 2})
    r.duplicates.update({"events": 1})
    assert r.reconciles()
    r.quarantined.update({"events": 1})
    assert not r.reconciles()


def _ann(value_type: str, value: Any, name: str = "review", annotator: str = "HUMAN") -> Annotation:
    return Annotation("a1", "v1", "e1", "2026-11-20T09:00:00Z", name, annotator, value_type, value,
                      reviewer_id="ana", comment="why")


@pytest.mark.parametrize("annotation, expected", [
    (_ann("label", "Accepted"), ("accepted", None)),
    (_ann("label", "ACCEPTED"), ("accepted", None)),          # exact first, then lower-cased
    (_ann("label", "rejected"), ("rejected", None)),
    (_ann("boolean", True, "ok"), ("accepted", None)),
    (_ann("boolean", False, "ok"), ("rejected", None)),
    (_ann("score", 0.8, "quality"), ("accepted", None)),      # [0.8, open)
    (_ann("score", 0.79, "quality"), ("escalated", None)),    # [0.3, 0.8)
    (_ann("correction", "the fixed text", "fix"), ("edited", "the fixed text")),
])
def test_rules_map_annotations_to_actions(annotation: Annotation, expected: tuple[str, str | None]) -> None:
    record, reason, _ = to_intervention(annotation, _config())
    assert reason == "" and record is not None
    assert (record["action"], record.get("final_text")) == expected
    assert (record["intervention_id"], record["event_id"], record["occurred_at"], record["reviewer_id"],
            record["comment"]) == ("a1@v1", "e1", "2026-11-20T09:00:00Z", "ana", "why")


@pytest.mark.parametrize("annotation, reason", [
    (_ann("label", "accepted", annotator="LLM"), "not_human"),
    (_ann("label", "accepted", name="tone"), "no_rule"),
    (_ann("label", None), "annotation_without_result"),
    (_ann("label", ""), "annotation_without_result"),
    (_ann("label", "maybe"), "unknown_label"),
    (_ann("score", 0.1, "quality"), "score_out_of_ranges"),
    (_ann("text", "a note", "review"), "unmapped_value"),
    (_ann("score", 0.9, "review"), "unmapped_value"),
    (_ann("correction", "x", "review"), "unmapped_value"),
])
def test_annotations_the_rules_cannot_map_get_a_named_reason(annotation: Annotation, reason: str) -> None:
    record, got, detail = to_intervention(annotation, _config())
    assert (record, got) == (None, reason) and detail


def test_a_rule_without_a_name_takes_every_name() -> None:
    config = _config(interventions=[{"labels": {"good": "accepted"}}])
    record, _, _ = to_intervention(_ann("label", "good", name="anything"), config)
    assert record is not None and record["action"] == "accepted"


def test_template_candidates_need_every_placeholder() -> None:
    c = FieldCandidate(template="{o.name}:{o.version}")
    assert candidate_value({"o": {"name": "p", "version": 3}}, c) == "p:3"
    assert candidate_value({"o": {"name": "p", "version": None}}, c) is None
    assert candidate_value({"o": {"name": "p"}}, FieldCandidate(path="o.name")) == "p"
    assert candidate_value({"o": {"name": ""}}, FieldCandidate(path="o.name")) is None


def test_durations() -> None:
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("14d") == timedelta(days=14)
    assert parse_duration(30) == timedelta(seconds=30)
    with pytest.raises(ValueError):
        parse_duration("two weeks")


@pytest.mark.parametrize("section, message", [
    ("    overlap: soon\n", "pull.langfuse.overlap: a duration such as 30m, 1h or 14d, got 'soon'"),
    ("    interventions:\n      - name: review\n", "pull.langfuse.interventions[0]: a rule maps at least one of"),
    ("    interventions:\n      - name: review\n        labels: {ok: approved}\n", "pull.langfuse.interventions[0].labels.ok"),
    ("    fields:\n      autonomy_level:\n        - default: sometimes\n", "pull.langfuse.fields.autonomy_level"),
    ("    colour: blue\n", "pull.langfuse.colour: Extra inputs are not permitted"),
])
def test_a_bad_pull_section_is_refused_with_its_place(tmp_path: Path, section: str, message: str) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("version: 1\npull:\n  langfuse:\n" + section)
    with pytest.raises(SourcesError) as exc:
        pull_config("langfuse", load_sources(path))
    assert message in str(exc.value)


def test_a_user_file_merges_over_the_shipped_pull_section(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("version: 1\npull:\n  langfuse:\n    annotators: [ANNOTATION, API]\n    overlap: 3h\n")
    config = pull_config("langfuse", load_sources(path))
    assert config.annotators == ["ANNOTATION", "API"] and config.overlap == timedelta(hours=3)
    assert config.annotation_lookback == timedelta(days=14) and config.event_types == ["GENERATION"]
    with pytest.raises(SourcesError, match="no pull.nosuch section"):
        pull_config("nosuch", load_sources(path))
