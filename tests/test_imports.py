"""What a fresh interpreter imports: the fixed costs of a small night.

Great Expectations takes about 3.5 s of CPU to import, more than validating a 100k-event day.
Importing the Dagster definitions, the CLI or the library's ingest must not import it, and a
validation that passes the polars screen (`flywheel.quality.screen`) must not either: GX is
imported only when some expectation fails, to report that failure. Each check runs in a new
process and reads its `sys.modules` (a behaviour, not a timing).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _modules_after(code: str) -> dict:
    """Run `code` in a fresh interpreter at the repository root; returns the JSON object it
    prints last, with "modules" set to the top-level packages then imported."""
    script = code + "\nimport json, sys\nprint(json.dumps({**globals().get('OUT', {}), " \
                    "'modules': sorted({m.split('.')[0] for m in sys.modules})}))\n"
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["assets.definitions", "assets.cli", "flywheel.ingest.sync", "flywheel.quality"])
def test_importing_does_not_import_great_expectations(module: str) -> None:
    assert "great_expectations" not in _modules_after(f"import {module}")["modules"]


def test_the_cli_starts_without_dagster() -> None:
    """`flywheel --help`, `flywheel sql` and friends: Dagster is imported by `flywheel run` only."""
    modules = _modules_after("import assets.cli")["modules"]
    assert "dagster" not in modules
    assert "great_expectations" not in modules


def _events_frame(n: int, bad_confidence: bool) -> pl.DataFrame:
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
    return pl.DataFrame({
        "event_id": [f"evt-{i}" for i in range(n)],
        "occurred_at": [t0 + timedelta(minutes=i) for i in range(n)],
        "event_date": [date(2026, 3, 1)] * n,
        "scenario": ["refund_request"] * n, "model": ["m"] * n, "prompt_version": ["v1"] * n,
        "autonomy_level": ["assist"] * n, "input_text": ["in"] * n, "output_text": ["out"] * n,
        "confidence": [1.5 if bad_confidence and i == 2 else 0.5 for i in range(n)],
        "status": ["ok"] * n, "latency_ms": [10.0] * n, "input_tokens": [5] * n, "output_tokens": [6] * n,
        "tool_calls": [[{"name": "lookup", "status": "ok", "arguments": None}]] * n,
        "decision_path": [None] * n, "trace_id": [None] * n, "attributes": [None] * n,
        "source_file": ["events/a.jsonl"] * n, "source_line": list(range(1, n + 1)), "record_hash": ["h"] * n,
    })


@pytest.mark.parametrize("bad", [False, True], ids=["clean", "one confidence of 1.5"])
def test_great_expectations_is_imported_only_to_report_a_failure(tmp_path: Path, bad: bool) -> None:
    path = tmp_path / "events.parquet"
    _events_frame(6, bad).write_parquet(path)
    out = _modules_after(
        "import polars as pl\nfrom flywheel.quality import validate\n"
        f"r = validate(pl.read_parquet({str(path)!r}), 'events')\n"
        "OUT = {'passed': r.passed, 'failed': [(o.expectation, o.column, o.unexpected_count) for o in r.failed_errors]}")
    assert out["passed"] is (not bad)
    if bad:
        assert out["failed"] == [["expect_column_values_to_be_between", "confidence", 1]]
        assert "great_expectations" in out["modules"]
    else:
        assert out["failed"] == []
        assert "great_expectations" not in out["modules"]
