"""The accounting check reads only the partitions of the run's landing files, and agrees with the
whole-store `ingest.file_reconciliation` view, balanced or not."""

from __future__ import annotations

from datetime import date

import dagster as dg
import polars as pl

from assets.checks import accounting_result
from conftest import run_pipeline, write_jsonl
from flywheel.reconcile import file_accounts, run_file_accounts
from flywheel.store import Layout, write_parquet_atomic
from test_ingest import event, intervention

KEY = dg.AssetKey(["ingest", "interventions"])


def _store(settings):
    write_jsonl(settings.landing / "events" / "d1.jsonl",
                [event(1), event(2), event(2), event(3, occurred_at="2026-03-02T08:00:00Z"), '{"broken'])
    write_jsonl(settings.landing / "events" / "d2.jsonl", [event(4, occurred_at="2026-03-02T09:00:00Z"), event(5, confidence=7)])
    write_jsonl(settings.landing / "interventions" / "i1.jsonl", [
        intervention(1, "e1"), intervention(1, "e1"), intervention(2, "e3", occurred_at="2026-03-02T10:00:00Z"),
        intervention(3, "e_missing"), intervention(4, "e4", occurred_at="2026-03-05T10:00:00Z"),
    ])
    run_pipeline(settings)


def test_run_accounts_equal_the_view(settings):
    _store(settings)
    everything = [r["path"] for r in file_accounts(settings)]
    assert len(everything) == 3
    assert run_file_accounts(settings, everything) == file_accounts(settings, everything)
    for path in everything:
        assert run_file_accounts(settings, [path]) == file_accounts(settings, [path])
    assert run_file_accounts(settings, ["events/never-landed.jsonl"]) == []
    rows = {r["path"]: r for r in run_file_accounts(settings, everything)}
    assert (rows["events/d1.jsonl"]["stored"], rows["events/d1.jsonl"]["duplicates"],
            rows["events/d1.jsonl"]["quarantined"]) == (3, 1, 1)
    assert (rows["interventions/i1.jsonl"]["stored"], rows["interventions/i1.jsonl"]["duplicates"],
            rows["interventions/i1.jsonl"]["pending"]) == (3, 1, 1)
    assert all(r["balanced"] for r in rows.values())


def test_an_unbalanced_file_fails_the_check_with_the_views_figures(settings):
    _store(settings)
    path = Layout(settings.store).table("events", date(2026, 3, 1))
    stored = pl.read_parquet(path)
    write_parquet_atomic(pl.concat([stored, stored.head(1)]).to_arrow(), path)  # a record stored twice
    paths = ["events/d1.jsonl", "events/d2.jsonl"]
    assert not {r["path"]: r for r in run_file_accounts(settings, paths)}["events/d1.jsonl"]["balanced"]
    result = accounting_result(KEY, settings, paths)
    assert not result.passed
    assert result.metadata["unbalanced"].value == 1
    assert result.metadata["files"].value == 2
