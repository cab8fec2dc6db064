"""The benchmark harness keeps working: bench-quick's code path at a tiny size, into a tmp dir.

No assertion on any time: only that every line ran, the report has its sections and the engine
floor agrees with the pipeline's counts. The repo's BENCHMARKS.md is never written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick_bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    work = tmp_path_factory.mktemp("bench")
    out = work / "report" / "BENCHMARKS.md"
    repo_report = REPO / "BENCHMARKS.md"
    before = repo_report.read_bytes() if repo_report.exists() else None
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--sizes", "500", "--history", "1,2", "--history-events", "500",
         "--work", str(work / "work"), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    after = repo_report.read_bytes() if repo_report.exists() else None
    assert before == after, "bench-quick must not write the repo's BENCHMARKS.md"
    return work / "work", out, proc


def test_quick_bench_runs_every_line(quick_bench) -> None:
    work, out, proc = quick_bench
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((work / "results.json").read_text())
    names = [n["name"] for n in results["nights"]]
    assert names == ["500 day", "500 day after 1 d", "500 day after 2 d"]
    for night in results["nights"]:
        rep = night["reps"][0]
        assert rep["result"]["error"] is None
        assert rep["maxrss"] > 0 and rep["wall"] > 0 and rep["code"]
        steps = rep["result"]["steps"]
        assets = {a for s in steps for a in s["assets"]}
        assert {"ingest/events", "ingest/interventions", "outcomes/event_outcomes"} <= assets
        assert all(s["status"] == "SUCCESS" and s["seconds"] is not None for s in steps)
        assert night["floor"]["result"]["matches_pipeline"] is True
    assert [b["days"] for b in results["backfills"]] == [1, 2]
    failures = results["failures"]
    assert failures["error"] is None and failures["failing_events"] == 5000 and failures["maxrss"] > 0
    assert all(b["events"] > 0 and b["eps"] > 0 for b in results["backfills"])


def test_quick_bench_report(quick_bench) -> None:
    _, out, proc = quick_bench
    assert proc.returncode == 0
    text = out.read_text()
    for heading in ("## Nightly run of one new day", "## Per asset (Dagster step) wall time", "## Backfill from an empty store",
                    "## Engine floor", "## Failure clusters: one night of 5k failing events", "## Targets",
                    "## What was run"):
        assert heading in text
    assert text.index("## Failure clusters") < text.index("## Targets")
    assert "| 5,000 |" in text  # every one of the failing events assigned and counted
    for word in ("machine:", "dagster", "duckdb", "polars", "pyarrow", "great-expectations", "bench.run --quick"):
        assert word in text
    assert "ingest__events" in text and "outcomes steps (s)" in text


def test_render_only_rewrites_the_report(quick_bench, tmp_path: Path) -> None:
    work, out, proc = quick_bench
    assert proc.returncode == 0
    again = tmp_path / "again.md"
    subprocess.run([sys.executable, "-m", "bench.run", "--render-only", "--work", str(work), "--out", str(again)],
                   cwd=REPO, check=True, capture_output=True, timeout=120)
    assert again.read_text() == out.read_text()


def test_arguments() -> None:
    sys.path.insert(0, str(REPO))
    try:
        from bench.run import label, make_config
    finally:
        sys.path.remove(str(REPO))
    cfg = make_config(["--quick"])
    assert cfg.out != REPO / "BENCHMARKS.md" and cfg.repeat == 1 and not cfg.schedule_window
    full = make_config(["--with-10m"])
    assert full.out == REPO / "BENCHMARKS.md" and full.sizes == [100_000, 1_000_000, 10_000_000]
    assert full.history == [7, 30, 90] and full.new_day.isoformat() == "2025-04-01"
    assert make_config(["--sizes", "2k,1M", "--history", ""]).sizes == [2000, 1_000_000]
    assert (label(2000), label(100_000), label(1_000_000), label(1234)) == ("2k", "100k", "1M", "1234")


def test_a_backfills_runs_are_summed_per_step() -> None:
    """`flywheel run` builds a backfill in several Dagster runs: the bench reports each step once,
    its seconds summed over the runs, first start, last end, highest peak, failed if any run failed."""
    from bench.child import _merge_steps

    def step(key, start, end, status="SUCCESS", peak=100, assets=("a",)):
        return {"step": key, "status": status, "start": start, "end": end, "seconds": end - start,
                "assets": list(assets), "checks": [], "peak_rss": peak}

    merged = _merge_steps([step("x", 0, 2), step("y", 2, 3), step("x", 10, 13, peak=300, assets=("a", "b")),
                           step("y", 13, 14, status="FAILURE", peak=50)])
    assert [m["step"] for m in merged] == ["x", "y"]
    x, y = merged
    assert (x["seconds"], x["start"], x["end"], x["peak_rss"], x["assets"]) == (5, 0, 13, 300, ["a", "b"])
    assert (y["seconds"], y["status"], y["peak_rss"]) == (2, "FAILURE", 100)
