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
    empty = results["nights"][0]  # the baselines run on the empty-store night, over its landing files
    for kind in ("landing", "pandas"):
        base = empty[kind]["result"]
        assert base.get("error") is None and base["events"] > 0 and base["cpu"] is not None
        # both count the events flywheel quarantines as well, so they may differ a little from it
        assert base["pipeline_events"] > 0 and base["count_difference"] <= 0.05 * base["pipeline_events"]
    assert len(empty["landing"]["result"]["seconds"]) == 3
    assert empty["pandas"]["result"]["wilson_bounded"] is True
    assert all(n["landing"] is None and n["pandas"] is None for n in results["nights"][1:])
    fixed = results["summaries"]["500 day"]["fixed"]
    assert abs(sum(fixed["parts"].values()) - fixed["wall"]) < 1e-6 and fixed["parts"]["landing sync"] > 0
    assert results["importtime"]["packages"]["dagster"] > 0
    assert [b["days"] for b in results["backfills"]] == [1, 2]
    failures = results["failures"]
    assert failures["error"] is None and failures["failing_events"] == 5000 and failures["maxrss"] > 0
    assert all(b["events"] > 0 and b["eps"] > 0 for b in results["backfills"])


def test_quick_bench_report(quick_bench) -> None:
    _, out, proc = quick_bench
    assert proc.returncode == 0
    text = out.read_text()
    for heading in ("## Nightly run of one new day", "## Per asset (Dagster step) wall time", "## Backfill from an empty store",
                    "## Engine floor over the stored partitions", "## Failure clusters: one night of 5k failing events",
                    "## Engine floor over the landing files, and a pandas notebook",
                    "## Fixed costs: where the 500-event day's", "## Targets", "## What was run"):
        assert heading in text
    assert text.index("## Failure clusters") < text.index("## Targets")
    assert "| 5,000 |" in text  # every one of the failing events assigned and counted
    for word in ("machine:", "dagster", "duckdb", "polars", "pyarrow", "great-expectations", "bench.run --quick"):
        assert word in text
    assert "ingest__events" in text and "outcomes steps (s)" in text
    baselines = text.split("## Engine floor over the landing files")[1].split("\n## ")[0]
    row = next(line for line in baselines.splitlines() if line.startswith("| 500 day |"))
    assert row.count("×") == 4  # end to end, landing sync, CPU and pandas, each over the floor
    for words in ("landing floor (s, best of N; first)", "pandas notebook (s)", "end to end / floor", "landing sync / floor"):
        assert words in baselines
    targets = text.split("## Targets")[1].split("\n## ")[0]
    for goal in ("<= 20 s wall", "<= 4× the landing floor", "<= 2× the landing floor", ">= 50,000 events/s",
                 "<= 3 min and <= 8 GiB", "one 100k-event day <= 8 s", "| by how much |"):
        assert goal in targets
    assert "at 500 (the goal is at 1M)" in targets  # the ratio shown at the size run, not judged


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


def _write_landing(folder: Path) -> list[Path]:
    """A hand-made landing day: 7 events (one sent twice, one line truncated) and a CSV of interventions."""
    events = [
        # e1: accepted with a changed text -> edited
        {"event_id": "e1", "scenario": "a", "autonomy_level": "assist", "confidence": 0.9, "output_text": "x",
         "decision_path": {"route": "human_review"}},
        # e2: two interventions, the later one (rejected) wins
        {"event_id": "e2", "scenario": "a", "autonomy_level": "assist", "confidence": 0.5, "output_text": "y",
         "decision_path": {"route": "human_review"}},
        # e3: gated, routed auto, no review -> acted_alone
        {"event_id": "e3", "scenario": "b", "autonomy_level": "gated", "confidence": 0.95, "output_text": "z",
         "decision_path": {"route": "auto_send", "gate": 0.9}},
        # e4: gated without a route, confidence under its gate -> awaiting_review
        {"event_id": "e4", "scenario": "b", "autonomy_level": "gated", "confidence": 0.5, "output_text": "z",
         "decision_path": {"gate": 0.9}},
        # e5: autonomous, decision path a plain string 'auto' -> acted_alone
        {"event_id": "e5", "scenario": "b", "autonomy_level": "autonomous", "confidence": 0.7, "output_text": "w",
         "decision_path": "auto"},
        # e6: accepted with the same text -> accepted; sent twice below
        {"event_id": "e6", "scenario": "a", "autonomy_level": "assist", "confidence": 0.8, "output_text": "same",
         "decision_path": {"route": "human_review"}},
    ]
    lines = [json.dumps(e) for e in events] + [json.dumps(events[-1]), '{"event_id": "e7", "scenario": "a", "autono']
    ev = folder / "events" / "events-2025-04-01.jsonl.gz"
    ev.parent.mkdir(parents=True)
    import gzip

    ev.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    iv = folder / "interventions" / "interventions-2025-04-01.csv"
    iv.parent.mkdir(parents=True)
    iv.write_text(
        "intervention_id,event_id,occurred_at,action,reviewer_id,final_text,reason_code,comment,review_seconds\n"
        "i1,e1,2025-04-01T10:00:00Z,accepted,r,\"x, changed\",,,3\n"
        "i2,e2,2025-04-01T10:00:00Z,accepted,r,,,,3\n"
        "i3,e2,2025-04-01T12:00:00+01:00,escalated,r,,,,3\n"      # 11:00 UTC: after i2
        "i4,e2,2025-04-01T11:00:00Z,rejected,r,,,,3\n"            # same time as i3, more severe: wins
        "i5,e6,2025-04-01T10:00:00Z,accepted,r,same,,,3\n"
        "i6,e4,2025-04-01T10:00:00Z,accepted,r,,,,3,one cell too many\n")
    return [ev, iv]


EXPECTED = [("a", "edited", 1), ("a", "rejected", 1), ("a", "accepted", 1),
            ("b", "acted_alone", 2), ("b", "awaiting_review", 1)]


def test_landing_floor_and_the_notebook_count_by_hand(tmp_path: Path) -> None:
    """The DuckDB query over landing files and the pandas notebook agree with counts made by hand:
    latest intervention wins (severity breaks a tie), accepted with a changed text is edited, a gated
    or autonomous event routed auto acted alone, duplicates count once, bad lines are skipped."""
    import duckdb

    from bench.child import landing_floor_sql
    from bench.notebook import notebook, wilson

    files = _write_landing(tmp_path / "landing")
    sql, params = landing_floor_sql(files)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    floor = con.sql(sql, params=params).fetchall()
    assert sorted(floor) == sorted(EXPECTED)
    # a day in several files per kind (the 10M-event day): readers joined; copies still count once
    sql, params = landing_floor_sql(files + files)
    assert sorted(con.sql(sql, params=params).fetchall()) == sorted(EXPECTED)
    counts = notebook(files)
    assert sorted((s, o, int(n)) for s, o, n in counts[["scenario", "outcome", "n"]].itertuples(index=False)) == sorted(EXPECTED)
    row = counts[(counts["scenario"] == "b") & (counts["outcome"] == "acted_alone")].iloc[0]
    assert row["events"] == 3 and abs(row["share"] - 2 / 3) < 1e-12
    lo, hi = wilson(pd_series([1.0]), pd_series([2.0]))  # 1 of 2: 0.5 +- 0.4055 (hand-computed, z = 1.96)
    assert abs(lo[0] - 0.0945) < 1e-4 and abs(hi[0] - 0.9055) < 1e-4


def pd_series(values: list[float]):
    import pandas as pd

    return pd.Series(values)


def test_goal_margins_and_fixed_costs_add_up() -> None:
    from bench.run import Measured, _by, fixed_costs

    assert _by(79.0, 20.0, "s") == "by 59.0 s (4.0× over the goal)"
    assert _by(6.5, 8.0, "s") == "1.50 s to spare"
    assert _by(6844.0, 50_000.0, "events/s", higher_is_better=True) == "by 43,156 events/s (7.3× below the goal)"
    assert _by(3.57, 3.0, "GiB") == "by 0.57 GiB (1.2× over the goal)"
    # spawn at 100.0; interpreter up 100.5; imports 2 s; run_days called 102.6; sync 1 s; execute_in_process
    # at 104.0; run start 104.5; steps 105-107 (catalog 0.5 s inside) and 107.5-108; run end 108.2; done 108.4
    result = {"t_start": 100.5, "t_ready": 102.6, "t_end": 108.4, "imports_seconds": 2.0,
              "run": {"start": 104.5, "end": 108.2, "runs": 1},
              "steps": [{"step": "x", "start": 105.0, "end": 107.0, "seconds": 2.0},
                        {"step": "y", "start": 107.5, "end": 108.0, "seconds": 0.5}],
              "timed": {"flywheel.ingest.sync:sync_landing": {"each": [1.0, 0.1], "seconds": 1.1},
                        "flywheel.catalog:build_catalog": {"each": [0.5], "seconds": 0.5},
                        "dagster:JobDefinition.execute_in_process": {"each": [4.0], "starts": [104.0], "seconds": 4.0}}}
    fixed = fixed_costs(Measured("n", 8.4, 8.5, 1, 1.0, result, None, None))
    parts = fixed["parts"]
    assert abs(sum(parts.values()) - 8.4) < 1e-9
    expected = {"interpreter start": 0.5, "imports (dagster, assets, flywheel)": 2.0, "harness setup": 0.1,
                "landing sync": 1.0, "Dagster run start -> first step": 0.5, "catalog builds (in steps)": 0.5,
                "steps' own work": 2.0, "Dagster between steps": 0.5, "last step -> run end -> process done": 0.4}
    for name, value in expected.items():
        assert abs(parts[name] - value) < 1e-9, name
    assert abs(parts["run_days after the sync, before execute_in_process (manifests, job, instance)"] - 0.4) < 1e-9
    assert abs(parts["execute_in_process -> Dagster run start (run record, job snapshot)"] - 0.5) < 1e-9


def test_the_critical_path_of_a_job_is_its_longest_chain_of_dependent_steps():
    from bench.deploy_bench import _upstream, critical_path

    # a -> b -> d and a -> c -> d: b is the slow branch, e hangs off a alone
    upstream = {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"b", "c"}, "e": {"a"}}
    assert critical_path({"a": 1.0, "b": 5.0, "c": 2.0, "d": 1.0, "e": 5.5}, upstream) == (["a", "b", "d"], 7.0)
    assert critical_path({"a": 1.0, "b": 5.0, "c": 2.0, "d": 1.0, "e": 6.5}, upstream) == (["a", "e"], 7.5)
    # the nightly job: every step waits on ingest__events, nothing on publish__decision_feed but itself
    nightly = _upstream()
    chain, total = critical_path(dict.fromkeys(nightly, 1.0), nightly)
    assert chain[0] == "ingest__events" and total == len(chain) and chain[-1] in ("publish__report", "publish__decision_feed")
    assert "failure_clusters" in nightly["decisions"] and nightly["ingest__events"] == set()


def test_the_nightly_report_keeps_the_other_sections(tmp_path: Path) -> None:
    """Written again, the nightly bench's report replaces only its own part of BENCHMARKS.md."""
    sys.path.insert(0, str(REPO))
    try:
        from bench.run import END_MARK, START_MARK, write_nightly_section
    finally:
        sys.path.remove(str(REPO))
    path = tmp_path / "BENCHMARKS.md"
    write_nightly_section(path, "# Benchmarks\n\nfirst run\n")
    assert path.read_text() == f"{START_MARK}\n# Benchmarks\n\nfirst run\n{END_MARK}\n"
    path.write_text(path.read_text() + "\n## Where the time goes (by hand)\n\nnotes\n\n## Decision quality\n\nx\n")
    write_nightly_section(path, "# Benchmarks\n\nsecond run\n")
    assert path.read_text() == (f"{START_MARK}\n# Benchmarks\n\nsecond run\n{END_MARK}\n"
                                "\n## Where the time goes (by hand)\n\nnotes\n\n## Decision quality\n\nx\n")
    other = tmp_path / "other.md"
    other.write_text("# Benchmarks\n\n## Decision quality\n\nx\n")  # no markers yet: the report goes on top
    write_nightly_section(other, "report\n")
    assert other.read_text() == f"{START_MARK}\nreport\n{END_MARK}\n\n# Benchmarks\n\n## Decision quality\n\nx\n"
