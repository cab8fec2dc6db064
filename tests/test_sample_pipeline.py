"""The whole ingestion on generated sample data whose truth is known: every malformed record is
quarantined under the reason the generator gave it, counts reconcile with the truth, and running
again changes nothing. One test goes through the `flywheel` CLI, as `make demo` does."""

from __future__ import annotations

import json
from datetime import date

import pytest

from assets.cli import main as cli
from conftest import query, run_pipeline
from flywheel.generate import generate

START = date(2026, 3, 1)


@pytest.fixture
def truth(settings) -> dict:
    return generate(settings.landing, days=6, events_per_day=400, seed=11, start=START, progress=False)


def _store_files(settings) -> dict:
    return {p: p.read_bytes() for p in sorted(settings.store.rglob("*.parquet")) if "_schema" not in p.parts}


def test_quarantine_and_counts_reconcile_with_the_generators_truth(settings, truth):
    run_pipeline(settings)
    got: dict[str, dict[str, int]] = {}
    for kind, code, n in query(settings, "SELECT record_kind, reason_code, count(*) FROM ingest.quarantine GROUP BY ALL"):
        got.setdefault(kind, {})[code] = n
    expected = {kind: {c: n for c, n in codes.items() if n} for kind, codes in truth["malformed"].items()}
    assert got == expected
    counts = truth["counts"]
    assert query(settings, "SELECT count(*) FROM ingest.events")[0][0] == counts["events_valid"]
    assert query(settings, "SELECT count(*) FROM ingest.interventions")[0][0] == counts["interventions_valid"]
    dups = dict(query(settings, "SELECT record_kind, count(*) FROM ingest.duplicates GROUP BY 1"))
    assert dups == {"events": counts["event_exact_duplicates"], "interventions": counts["intervention_exact_duplicates"]}
    assert query(settings, "SELECT count(*) FROM ingest.pending_interventions")[0][0] == 0
    assert query(settings, "SELECT bool_and(balanced), sum(records_read) FROM ingest.file_reconciliation")[0] == (
        True, sum(f["records"] for f in truth["files"]))


def test_running_again_changes_nothing(settings, truth):
    run_pipeline(settings)
    before = _store_files(settings)
    report = run_pipeline(settings, sorted(date.fromisoformat(d) for d in _days(truth)))
    assert all(f.status == "unchanged" for f in report.files)
    assert _store_files(settings) == before


def _days(truth: dict) -> list[str]:
    return [date.fromordinal(START.toordinal() + i).isoformat() for i in range(truth["days"])]


def test_the_cli_runs_the_nightly_job_over_every_day_with_data(settings, truth, capsys):
    assert cli(["run", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"ran event days {START} .. 2026-03-06" in out
    assert "files whose counts do not reconcile: 0" in out
    assert "quarantine matches it exactly" in out
    assert "per scenario, last 28 days to 2026-03-06:" in out
    for scenario in truth["scenarios"]:
        assert f"\n{scenario} " in out
    assert cli(["summary", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["totals"]["stored"] == truth["counts"]["events_valid"] + truth["counts"]["interventions_valid"]
    assert sum(s["events"] for s in summary["scenarios"]) == truth["counts"]["events_valid"]
