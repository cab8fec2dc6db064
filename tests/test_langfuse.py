"""Langfuse as a pulled source (flywheel/sources/langfuse.py), pinned field by field on fixtures
written from its public API reference (tests/fixtures/langfuse/README.md cites it): generations
become events, scores become interventions through the sources file's rules, what cannot be mapped
is quarantined with its reason, a re-pull lands nothing, and the pulled records go through the
landing sync into stored events, interventions and outcomes."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from flywheel.config import Settings
from flywheel.sources import load_sources
from flywheel.sources.langfuse import LangfuseFiles
from flywheel.sources.pull import pull, source_dir
from flywheel.sources.verdicts import PullSource, pull_config
from tests.conftest import query, run_outcomes, run_pipeline

FIXTURES = Path(__file__).parent / "fixtures" / "langfuse"
T1, T2, T3 = "7f1c2a3b4c5d6e7f8091a2b3c4d5e6f7", "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "3c4d5e6f708192a3b4c5d6e7f8091a2b"

# Rules a team might add: the default's two rules, plus a boolean and a numeric score.
CUSTOM = """version: 1
pull:
  langfuse:
    interventions:
      - name: output
        correction: edited
      - name: review
        labels: {accepted: accepted, edited: edited, rejected: rejected, escalated: escalated, reverted: reverted}
      - name: approved
        booleans: {true: accepted, false: rejected}
      - name: quality
        scores:
          - {min: 0.8, action: accepted}
          - {max: 0.8, action: rejected}
"""


def _settings(tmp_path: Path) -> Settings:
    return Settings(landing=tmp_path / "landing", store=tmp_path / "store", db=tmp_path / "flywheel.duckdb")


def _pull(settings: Settings, config: PullSource | None = None, folder: Path = FIXTURES) -> Any:
    config = config or pull_config("langfuse", load_sources(None))
    return pull(settings, LangfuseFiles(folder, config), config)


def _jsonl(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for p in sorted(folder.glob("*.jsonl")) for line in p.read_text().splitlines()]


def _landed(settings: Settings, kind: str) -> dict[str, dict[str, Any]]:
    key = "event_id" if kind == "events" else "intervention_id"
    return {r[key]: r for r in _jsonl(settings.landing / kind / "langfuse")}


def _quarantined(settings: Settings) -> dict[str, dict[str, Any]]:
    return {r["record_id"]: r for r in _jsonl(source_dir(settings, "langfuse") / "quarantine")}


def test_generations_become_events_field_by_field(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    _pull(s)
    events = _landed(s, "events")
    assert sorted(events) == ["1b2c3d4e5f607182", "2c3d4e5f60718293", "3d4e5f6071829304", "9a1f0c3b2d4e5f60"]
    # v1 observation: metadata scenario and confidence, trace metadata autonomy level, prompt name:version,
    # chat messages -> the last message's content, latency from start/end, usageDetails
    assert events["9a1f0c3b2d4e5f60"] == {
        "event_id": "9a1f0c3b2d4e5f60", "occurred_at": "2026-11-20T09:00:00.100Z", "scenario": "refund_request",
        "model": "gpt-4o-mini", "prompt_version": "refund-reply:3", "confidence": 0.82, "autonomy_level": "gated",
        "status": "ok", "input_text": "I want a refund for order 123", "output_text": "I have refunded 20 EUR.",
        "latency_ms": 1250.0, "input_tokens": 52, "output_tokens": 14, "trace_id": T1,
        "attributes": {"langfuse": {
            "name": "draft-reply", "environment": "production", "promptName": "refund-reply", "promptVersion": 3,
            "level": "DEFAULT", "parentObservationId": "5e0d1c2b3a495867", "calculatedTotalCost": 0.0000162,
            "trace_name": "refund_request", "trace_userId": "cust-17", "trace_sessionId": "sess-1",
            "trace_tags": ["prod", "support"], "trace_release": "2026.11.2"}},
    }
    # level ERROR -> status error; scenario from the trace name; prompt version from metadata; no output;
    # output tokens from the deprecated usage object when usageDetails has none
    e2 = events["1b2c3d4e5f607182"]
    assert {k: e2.get(k) for k in ("scenario", "model", "prompt_version", "autonomy_level", "status", "input_text",
                                   "output_text", "latency_ms", "input_tokens", "output_tokens", "confidence")} == {
        "scenario": "order_status", "model": "gpt-4o", "prompt_version": "v7", "autonomy_level": "assist",
        "status": "error", "input_text": "Where is order 456?", "output_text": None, "latency_ms": 800.0,
        "input_tokens": 30, "output_tokens": 0, "confidence": None}
    assert e2["attributes"]["langfuse"]["statusMessage"] == "rate limited by the provider"
    # v2 observation: io as raw JSON strings decoded, metadata values as strings ("0.64" -> 0.64)
    e3 = events["2c3d4e5f60718293"]
    assert {k: e3.get(k) for k in ("scenario", "prompt_version", "confidence", "input_text", "output_text",
                                   "latency_ms", "input_tokens", "output_tokens", "trace_id")} == {
        "scenario": "shipping", "prompt_version": "ship:1", "confidence": 0.64, "input_text": "Where is my parcel?",
        "output_text": "It ships tomorrow.", "latency_ms": 2500.0, "input_tokens": 20, "output_tokens": 6,
        "trace_id": T3}
    # WARNING is not an error; plain text io stays as it is; no prompt: no prompt_version (the sync says unversioned)
    e4 = events["3d4e5f6071829304"]
    assert (e4["status"], e4["scenario"], e4["input_text"], e4["output_text"], "prompt_version" in e4) == (
        "ok", "shipping-bot", "and the tracking number?", "It ships tomorrow, tracking 42.", False)


def test_scores_become_interventions_by_the_default_rules(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    _pull(s)
    assert _landed(s, "interventions") == {
        # CORRECTION (v2): edited, the corrected output as final_text; occurred_at = updatedAt
        "score-correction-1@2026-11-20T09:06:30.000Z": {
            "intervention_id": "score-correction-1@2026-11-20T09:06:30.000Z", "event_id": "9a1f0c3b2d4e5f60",
            "occurred_at": "2026-11-20T09:06:30.000Z", "action": "edited", "final_text": "I have refunded 25 EUR.",
            "reviewer_id": "user-ana", "comment": "amount was wrong"},
        # CATEGORICAL (v2): stringValue "Escalated" matched lower-cased
        "score-review-2@2026-11-20T10:30:00.000Z": {
            "intervention_id": "score-review-2@2026-11-20T10:30:00.000Z", "event_id": "1b2c3d4e5f607182",
            "occurred_at": "2026-11-20T10:30:00.000Z", "action": "escalated", "reviewer_id": "user-bo"},
        # CATEGORICAL (v3): value "rejected", target in subject
        "score-review-8@2026-11-20T11:16:00.000Z": {
            "intervention_id": "score-review-8@2026-11-20T11:16:00.000Z", "event_id": "2c3d4e5f60718293",
            "occurred_at": "2026-11-20T11:16:00.000Z", "action": "rejected", "reviewer_id": "user-bo",
            "comment": "wrong carrier"},
    }
    assert {k: (q["kind"], q["reason"]) for k, q in _quarantined(s).items()} == {
        "4e5f607182930415": ("events", "bad_timestamp"),
        "score-approved-3": ("interventions", "no_rule"),               # BOOLEAN: no default rule for 'approved'
        "score-judge-4": ("interventions", "not_human"),                # source EVAL
        "score-review-5": ("interventions", "unknown_label"),           # 'maybe'
        "score-review-6": ("interventions", "trace_not_found"),
        "score-note-7": ("interventions", "no_rule"),                   # TEXT
        "score-approved-9": ("interventions", "unsupported_target"),    # a session score (v3 subject)
        "score-quality-10": ("interventions", "no_rule"),               # NUMERIC: no default rule for 'quality'
        "score-correction-11": ("interventions", "annotation_without_result"),
    }


def test_custom_rules_map_booleans_and_score_ranges(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    path = tmp_path / "sources.yaml"
    path.write_text(CUSTOM)
    _pull(s, pull_config("langfuse", load_sources(path)))
    got = {k.split("@")[0]: (r["event_id"], r["action"]) for k, r in _landed(s, "interventions").items()}
    # BOOLEAN 1/"True" on trace T3 -> its last generation by start time; NUMERIC 0.9 in [0.8, open)
    assert got["score-approved-3"] == ("3d4e5f6071829304", "accepted")
    assert got["score-quality-10"] == ("3d4e5f6071829304", "accepted")
    assert len(got) == 5
    assert _quarantined(s)["score-approved-9"]["reason"] == "unsupported_target"


def test_a_repull_lands_nothing_and_the_counts_reconcile(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    first = _pull(s)
    assert (dict(first.fetched), dict(first.landed), dict(first.quarantined)) == (
        {"events": 5, "interventions": 11}, {"events": 4, "interventions": 3}, {"events": 1, "interventions": 8})
    assert first.reconciles() and first.hwm_after == "2026-11-20T11:00:05Z"
    files = sorted(p.name for p in tmp_path.rglob("*.jsonl"))
    second = _pull(s)
    # events from the mark minus 1h: the two 11:00 generations and the bad-timestamp one; every score
    assert (dict(second.fetched), dict(second.duplicates)) == (
        {"events": 3, "interventions": 11}, {"events": 3, "interventions": 11})
    assert second.files == [] and sorted(p.name for p in tmp_path.rglob("*.jsonl")) == files
    assert "  interventions: fetched 11 = landed 0 + duplicates 11 + quarantined 0" in second.lines()


def test_unreadable_files_and_unknown_items_are_quarantined(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    folder = tmp_path / "export"
    shutil.copytree(FIXTURES, folder)
    (folder / "broken.json").write_text('{"data": [')
    (folder / "page.json").write_text('[{"id": "x"}]')
    (folder / "odd.json").write_text('{"data": [{"id": "q1", "kind": "dataset"}, "text"], "meta": {}}')
    report = _pull(s, folder=folder)
    q = _quarantined(s)
    assert (q["broken.json"]["reason"], q["page.json"]["reason"]) == ("unreadable_file", "unreadable_file")
    assert (q["odd.json#0"]["reason"], q["odd.json#1"]["reason"]) == ("unrecognized_record", "unrecognized_record")
    assert (report.fetched["files"], report.fetched["unrecognized"]) == (2, 2) and report.reconciles()


def test_pulled_records_are_stored_and_their_outcomes_computed(settings: Settings, capsys: pytest.CaptureFixture) -> None:
    from assets.cli import main

    assert main(["pull", "langfuse", "--from", str(FIXTURES)]) == 0
    out = capsys.readouterr().out
    assert "events: fetched 5 = landed 4 + duplicates 0 + quarantined 1" in out
    assert "interventions: fetched 11 = landed 3 + duplicates 0 + quarantined 8" in out
    run_pipeline(settings)
    run_outcomes(settings, [date(2026, 11, 20)])
    assert query(settings, "SELECT count(*) FROM ingest.quarantine") == [(0,)]
    assert query(settings, "SELECT event_id, scenario, prompt_version, status FROM ingest.events ORDER BY event_id") == [
        ("1b2c3d4e5f607182", "order_status", "v7", "error"),
        ("2c3d4e5f60718293", "shipping", "ship:1", "ok"),
        ("3d4e5f6071829304", "shipping-bot", "unversioned", "ok"),
        ("9a1f0c3b2d4e5f60", "refund_request", "refund-reply:3", "ok"),
    ]
    assert query(settings, "SELECT count(*) FROM ingest.interventions") == [(3,)]
    # the pull's quarantine hides reviewers behind the pseudonyms stored interventions carry
    [(ana,)] = query(settings, "SELECT reviewer_id FROM ingest.interventions WHERE event_id = '9a1f0c3b2d4e5f60'")
    assert ana.startswith("r_") and _quarantined(settings)["score-review-5"]["raw"]["authorUserId"] == ana
    assert query(settings, "SELECT event_id, outcome FROM outcomes.event_outcomes ORDER BY event_id") == [
        ("1b2c3d4e5f607182", "escalated"),
        ("2c3d4e5f60718293", "rejected"),
        ("3d4e5f6071829304", "awaiting_review"),
        ("9a1f0c3b2d4e5f60", "edited"),
    ]


def test_the_command_refuses_a_bad_pull_section_and_a_missing_folder(settings: Settings, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture) -> None:
    from assets.cli import main

    assert main(["pull", "langfuse", "--from", str(tmp_path / "nowhere")]) == 2
    assert "no such folder of Langfuse API responses" in capsys.readouterr().err
    bad = tmp_path / "sources.yaml"
    bad.write_text("version: 1\npull:\n  langfuse:\n    annotators: ANNOTATION\n")
    monkeypatch.setenv("FLYWHEEL_SOURCES", str(bad))
    assert main(["pull", "langfuse", "--from", str(FIXTURES)]) == 2
    assert "pull.langfuse.annotators: Input should be a valid list" in capsys.readouterr().err
    assert not (settings.landing / "events" / "langfuse").exists()


def test_a_configured_folder_makes_langfuse_a_dagster_asset(settings: Settings, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """With pull.langfuse.folder in the sources file, `sources/langfuse` pulls that folder (and
    `flywheel pull langfuse` needs no --from); the default file names no folder: no asset."""
    import dagster as dg

    from assets.cli import main
    from assets.resources import FlywheelResource
    from assets.sources import configured, source_definitions

    assert "langfuse" not in configured(load_sources(None))
    sources_file = tmp_path / "sources.yaml"
    sources_file.write_text(f"pull:\n  langfuse:\n    folder: {FIXTURES}\n")
    monkeypatch.setenv("FLYWHEEL_SOURCES", str(sources_file))
    assets, _, _ = source_definitions(load_sources(sources_file))
    assert [a.key.to_user_string() for a in assets] == ["sources/langfuse"]
    result = dg.materialize(assets, resources={"flywheel": FlywheelResource()}, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    [mat] = result.asset_materializations_for_node("sources__langfuse")
    meta = {k: v.value for k, v in mat.metadata.items() if k.startswith(("fetched", "landed", "quarantined"))}
    assert meta == {"fetched_events": 5, "landed_events": 4, "quarantined_events": 1,
                    "fetched_interventions": 11, "landed_interventions": 3, "quarantined_interventions": 8}
    assert len(_landed(settings, "events")) == 4
    assert main(["pull", "langfuse"]) == 0  # the folder from the file; everything already landed
