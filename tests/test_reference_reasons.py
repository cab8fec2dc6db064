"""Every quarantine reason of the contract (`contracts.REASONS`) is in the data the batch staging
is held equal to the per-record reference on (`tests/test_ingest_fastpath.py`: the generated days
with every kind of bad record, and the hand-made corner files), so no reason's path goes
unchecked by that equivalence. Reasons given while reading are found in the reference's staged
quarantine; the two given while building a day (`conflicting_duplicate`,
`intervention_before_event`) in the partition quarantine of the days built from the reference's
staged records (the same staged records the fast path writes, held equal by those tests)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from flywheel.config import Settings
from flywheel.contracts import REASONS
from flywheel.generate import generate
from flywheel.ingest.partition import build_events, build_interventions
from reference_ingest import sync_landing_reference
from test_ingest_fastpath import GENERATED, corner_limits, write_corner_files

PARTITION_REASONS = {"conflicting_duplicate", "intervention_before_event"}


def _reasons(folder: Path) -> set[str]:
    """The reason codes of every quarantine Parquet file under `folder`."""
    return {code for path in folder.rglob("*.parquet") for code in pq.read_table(path, columns=["reason_code"])
            .column("reason_code").to_pylist()}


def test_every_quarantine_reason_is_in_the_fast_path_equivalence_data(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_HASH_KEY", "fastpath-test")
    generated = Settings(landing=tmp_path / "generated", store=tmp_path / "g", db=tmp_path / "g.duckdb")
    generate(generated.landing, **GENERATED, progress=False)
    report = sync_landing_reference(generated, workers=1)
    for day in sorted(report.event_days):
        build_events(generated, day)
        build_interventions(generated, day)

    corner_limits(monkeypatch)
    corners = Settings(landing=tmp_path / "corners", store=tmp_path / "c", db=tmp_path / "c.duckdb")
    write_corner_files(corners.landing)
    sync_landing_reference(corners, workers=1)

    at_read = _reasons(generated.store / "staging" / "quarantine") | _reasons(corners.store / "staging" / "quarantine")
    at_partition = _reasons(generated.store / "quarantine")
    assert at_read == set(REASONS) - PARTITION_REASONS
    assert at_partition == PARTITION_REASONS
