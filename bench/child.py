"""One measured run, in a fresh process: `python -m bench.child SPEC.json RESULT.json`.

SPEC is a JSON object with `mode`:

- `generate`: `flywheel.generate.generate(landing, days, events_per_day, seed, start)`.
- `nightly`: the nightly Dagster job exactly as `flywheel run --from FIRST --to LAST` runs it
  (`assets.runner.run_days`, in-process, against the instance at $DAGSTER_HOME), with the landing
  sync timed, a few library functions timed where they are called (checks, catalog rebuilds),
  and, with `profile`, the whole run under cProfile. After the run: per-step start/end times and
  the assets each step materialised, from the Dagster event log of every run it started (a
  backfill builds its range in several runs: each step's times are summed over them).
- `runinfo`: only read the latest run's steps (after a run the bench had to kill).
- `failures`: the failure model's night of `docs` failing events after 13 normal nights
  (`flywheel.failures.benchmark.scale`).
- `floor`: the engine floor, bench/engine_floor.sql over the day's stored Parquet partitions,
  repeated; compared with the day's outcomes/event_outcomes counts.
- `landing_floor`: the engine floor over the landing files, bench/landing_floor.sql over `files`
  (one DuckDB reader per file), repeated, with CPU time; compared with the stored outcomes of the
  same events (not timed).
- `pandas`: the pandas notebook (bench/notebook.py) over `files`, once, its imports included.
- `importtime`: `python -X importtime` of what a run imports, summed per top-level package.

The parent measures wall time from spawn and peak memory with os.wait4; this process writes
`t_end` (epoch seconds when the measured work ended) so that the bookkeeping after it is not counted.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date
from pathlib import Path

T_START = time.time()

# Functions timed where they are called, if they exist ("module:function"). They run inside the
# steps, so their time is part of the step times, not added to them.
TIMED = (
    "flywheel.ingest.sync:sync_landing",
    "flywheel.catalog:build_catalog",
    "assets.checks:gx_result",
    "assets.checks:accounting_result",
    "flywheel.outcomes.invariants:rates_out_of_bounds",
    "flywheel.outcomes.invariants:count_mismatches",
    "flywheel.ingest.manifest:load_manifests",
    "assets.runner:dagster_instance",
    "assets.runner:fail_dead_runs",
    "dagster:JobDefinition.execute_in_process",  # a method: wrapped on the class
)

FLOOR_SQL = Path(__file__).with_name("engine_floor.sql")


class RssSampler:
    """Samples this process's resident set every `interval` s on a thread: peak memory per step."""

    def __init__(self, interval: float = 0.2):
        import threading

        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), _rss()))
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), _rss()))

    def peak(self, start: float | None, end: float | None) -> int | None:
        if start is None:
            return None
        inside = [r for t, r in self.samples if start <= t <= (end if end is not None else float("inf"))]
        return max(inside) if inside else None


def _rss() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _instrument(names: tuple[str, ...]) -> dict[str, list[float]]:
    """Wrap each function, everywhere flywheel's modules hold a reference to it; returns the timings."""
    import functools
    import importlib

    timings: dict[str, list[float]] = {}
    for name in names:
        module_name, func_name = name.split(":")
        owner_name, _, method = func_name.rpartition(".")
        try:
            module = importlib.import_module(module_name)
            owner = getattr(module, owner_name) if owner_name else module
            original = getattr(owner, method)
        except (ImportError, AttributeError):
            continue
        calls = timings.setdefault(name, [])
        starts = timings.setdefault(name + "@start", [])

        def wrapper(*args, __original=original, __calls=calls, __starts=starts, **kwargs):
            __starts.append(time.time())
            t0 = time.perf_counter()
            try:
                return __original(*args, **kwargs)
            finally:
                __calls.append(time.perf_counter() - t0)

        functools.update_wrapper(wrapper, original)
        if owner_name:
            setattr(owner, method, wrapper)
        else:
            _replace_everywhere(original, wrapper)
    return timings


def _replace_everywhere(original, replacement) -> None:
    """Point every reference that flywheel's and assets' modules hold to `original` at `replacement`."""
    for mod_name, mod in list(sys.modules.items()):
        if mod is None or not (mod_name.startswith("assets") or mod_name.startswith("flywheel")):
            continue
        for attr, value in list(vars(mod).items()):
            if value is original:
                setattr(mod, attr, replacement)


def _serial_sync() -> bool:
    """Make the landing sync read its files in this process (workers=1), so that cProfile sees the parsing."""
    import inspect

    import flywheel.ingest.sync as sync

    original = sync.sync_landing
    if "workers" not in inspect.signature(original).parameters:
        return False

    def serial(settings, workers=None, __original=original):
        return __original(settings, workers=1)

    _replace_everywhere(original, serial)
    return True


def _generate(spec: dict) -> dict:
    from flywheel.generate import generate

    t0 = time.perf_counter()
    truth = generate(Path(spec["landing"]), days=spec["days"], events_per_day=spec["events_per_day"],
                     seed=spec["seed"], start=date.fromisoformat(spec["start"]), progress=False)
    return {"seconds": time.perf_counter() - t0, "t_end": time.time(), "counts": truth.get("counts", {})}


def _nightly(spec: dict) -> dict:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("dagster").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    import dagster as dg

    try:
        from assets.runner import run_days
    except ImportError:  # before the runner had its own module
        from assets.cli import run_days
    from assets.definitions import defs  # noqa: F401  (loads every asset module before instrumenting)
    from flywheel.config import Settings

    t_imports = time.perf_counter() - t0
    serial = _serial_sync() if spec.get("serial_sync") else False
    timings = _instrument(TIMED)
    settings = Settings.from_env()
    first = date.fromisoformat(spec["first"]) if spec.get("first") else None
    last = date.fromisoformat(spec["last"]) if spec.get("last") else None

    profiler = None
    if spec.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
    t_ready = time.time()
    error = None
    t1 = time.perf_counter()
    with RssSampler() as sampler:
        try:
            if profiler is not None:
                profiler.enable()
            ran = run_days(settings, first, last, quiet=True)
        except Exception as exc:  # reported to the parent, which fails the bench
            ran, error = None, f"{type(exc).__name__}: {exc}"
        finally:
            if profiler is not None:
                profiler.disable()
    run_days_seconds = time.perf_counter() - t1
    t_end = time.time()

    out: dict = {"t_start": T_START, "t_ready": t_ready, "t_end": t_end, "imports_seconds": t_imports,
                 "run_days_seconds": run_days_seconds, "error": error, "serial_sync": serial,
                 "ran": [ran[0].isoformat(), ran[1].isoformat()] if ran else None,
                 "timed": {k: {"calls": len(v), "seconds": sum(v), "each": v, "starts": timings[k + "@start"]}
                           for k, v in timings.items() if not k.endswith("@start")}}
    if profiler is not None:
        profiler.dump_stats(spec["profile"])
    out.update(_run_record(dg, since=t_ready))
    for step in out["steps"]:  # the peak of each step of each run, before a step's runs are merged
        step["peak_rss"] = sampler.peak(step["start"], step["end"])
    out["steps"] = _merge_steps(out["steps"])
    first_step = min((s["start"] for s in out["steps"] if s["start"]), default=None)
    out["peak_rss_before_job"] = sampler.peak(t_ready, first_step)  # imports done: the landing sync, mostly
    out["peak_rss_sampled"] = max((r for _, r in sampler.samples), default=None)
    out.update(_stored_counts(settings, ran))
    return out


def _run_record(dg, since: float | None = None) -> dict:
    """Steps of the runs of the instance at $DAGSTER_HOME that started at or after `since` (a backfill
    builds its range in several runs; the latest run only when `since` is None): times, status, assets.
    `run` spans them all: the first run's start to the last run's end, with the last run's status."""
    from dagster import DagsterEventType

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(limit=1 if since is None else 1000)  # newest first
        if since is not None:
            runs = [r for r in runs if (instance.get_run_stats(r.run_id).start_time or 0) >= since]
        if not runs:
            return {"run": None, "steps": []}
        steps = []
        stats = {r.run_id: instance.get_run_stats(r.run_id) for r in runs}
        for run in runs:
            assets: dict[str, list[str]] = {}
            checks: dict[str, list[str]] = {}
            records = instance.get_records_for_run(
                run.run_id, of_type={DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_CHECK_EVALUATION},
                limit=100_000).records
            for rec in records:
                entry = rec.event_log_entry
                event = entry.dagster_event
                if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
                    key = "/".join(event.asset_key.path)
                    if key not in assets.setdefault(entry.step_key, []):
                        assets[entry.step_key].append(key)
                else:
                    ck = event.event_specific_data.asset_check_key
                    name = "/".join(ck.asset_key.path) + ":" + ck.name
                    if name not in checks.setdefault(entry.step_key, []):
                        checks[entry.step_key].append(name)
            for s in instance.get_run_step_stats(run.run_id):
                steps.append({"step": s.step_key, "status": s.status.value if s.status else None,
                              "start": s.start_time, "end": s.end_time,
                              "seconds": (s.end_time - s.start_time) if s.start_time and s.end_time else None,
                              "assets": assets.get(s.step_key, []), "checks": checks.get(s.step_key, [])})
        steps.sort(key=lambda s: s["start"] or 0)
        last, first = runs[0], runs[-1]
        return {"run": {"run_id": last.run_id, "status": last.status.value, "start": stats[first.run_id].start_time,
                        "end": stats[last.run_id].end_time, "tags": dict(last.tags), "runs": len(runs)},
                "steps": steps}


def _merge_steps(steps: list[dict]) -> list[dict]:
    """One entry per step key over several runs: seconds summed, the first start, the last end, the
    highest peak; failed if any run's step failed."""
    merged: dict[str, dict] = {}
    for s in steps:
        m = merged.get(s["step"])
        if m is None:
            merged[s["step"]] = dict(s, assets=list(s["assets"]), checks=list(s["checks"]))
            continue
        def pick(fn, *values):
            known = [v for v in values if v is not None]
            return fn(known) if known else None
        m["seconds"] = pick(sum, m["seconds"], s["seconds"])
        m["start"] = pick(min, m["start"], s["start"])
        m["end"] = pick(max, m["end"], s["end"])
        m["peak_rss"] = pick(max, m.get("peak_rss"), s.get("peak_rss"))
        if s["status"] != "SUCCESS":
            m["status"] = s["status"]
        m["assets"] += [a for a in s["assets"] if a not in m["assets"]]
        m["checks"] += [c for c in s["checks"] if c not in m["checks"]]
    return sorted(merged.values(), key=lambda s: (s["start"] is None, s["start"] or 0))


def _stored_counts(settings, ran) -> dict:
    """Events stored in the store (all days, and the days run); not timed."""
    import duckdb

    root = settings.store / "events"
    files = sorted(root.glob("event_date=*/data.parquet")) if root.is_dir() else []
    if not files:
        return {"events_stored_total": 0, "events_stored_in_range": 0}
    con = duckdb.connect()
    total = con.sql("SELECT count(*) FROM read_parquet($f)", params={"f": [str(f) for f in files]}).fetchall()[0][0]
    in_range = 0
    if ran:
        lo, hi = ran[0].isoformat(), ran[1].isoformat()
        sel = [str(f) for f in files if lo <= f.parent.name.split("=", 1)[1] <= hi]
        if sel:
            in_range = con.sql("SELECT count(*) FROM read_parquet($f)", params={"f": sel}).fetchall()[0][0]
    return {"events_stored_total": int(total), "events_stored_in_range": int(in_range)}


def _runinfo(spec: dict) -> dict:
    import dagster as dg

    return _run_record(dg)


def _floor(spec: dict) -> dict:
    import duckdb

    store = Path(spec["store"])
    day = spec["day"]
    events = store / "events" / f"event_date={day}" / "data.parquet"
    interventions = store / "interventions" / f"event_date={day}" / "data.parquet"
    outcomes = store / "outcomes" / "event_outcomes" / f"event_date={day}" / "data.parquet"
    sql = FLOOR_SQL.read_text()
    if not interventions.exists():  # no intervention for the day: an empty relation of the same shape
        sql = sql.replace("FROM read_parquet($interventions)",
                          "FROM (SELECT NULL::VARCHAR AS event_id, NULL::VARCHAR AS action, NULL::VARCHAR AS final_text, "
                          "NULL::TIMESTAMPTZ AS occurred_at, NULL::VARCHAR AS intervention_id WHERE false)")
    params = {"events": str(events)}
    if interventions.exists():
        params["interventions"] = str(interventions)
    times, rows = [], None
    for _ in range(spec.get("repeat", 3)):
        t0 = time.perf_counter()
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        rows = con.sql(sql, params=params).fetchall()
        con.close()
        times.append(time.perf_counter() - t0)
    t_end = time.time()
    pipeline = None
    if outcomes.exists():
        con = duckdb.connect(":memory:")
        pipeline = con.sql("SELECT scenario, outcome, count(*) FROM read_parquet($p) GROUP BY ALL ORDER BY ALL",
                           params={"p": str(outcomes)}).fetchall()
    events_n = sum(r[2] for r in rows or [])
    return {"t_end": t_end, "seconds": times, "events": int(events_n), "groups": len(rows or []),
            "matches_pipeline": None if pipeline is None else [tuple(r) for r in rows] == [tuple(r) for r in pipeline]}


LANDING_FLOOR_SQL = Path(__file__).with_name("landing_floor.sql")
_TEXT_COLUMNS = {
    "events": ("event_id", "scenario", "autonomy_level", "confidence", "output_text", "decision_path"),
    "interventions": ("intervention_id", "event_id", "occurred_at", "action", "final_text"),
}
_CSV_HEADERS = {  # every field of a landing CSV file, in the contract's order
    "events": ("event_id", "occurred_at", "scenario", "model", "prompt_version", "autonomy_level", "input_text",
               "output_text", "confidence", "status", "latency_ms", "input_tokens", "output_tokens", "tool_calls",
               "decision_path", "trace_id", "attributes"),
    "interventions": ("intervention_id", "event_id", "occurred_at", "action", "reviewer_id", "final_text",
                      "reason_code", "comment", "review_seconds"),
}


def _reader(path: Path, fam: str, param: str) -> str:
    """One DuckDB reader call over a landing file, its needed fields as text (decision_path as JSON)."""
    wanted = _TEXT_COLUMNS[fam]
    name = path.name
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")):
        cols = ", ".join(f"'{c}': '{'JSON' if c == 'decision_path' else 'VARCHAR'}'" for c in wanted)
        return f"SELECT * FROM read_ndjson(${param}, columns = {{{cols}}}, ignore_errors = true)"
    if name.endswith(".csv"):
        cols = ", ".join(f"'{c}': 'VARCHAR'" for c in _CSV_HEADERS[fam])
        return (f"SELECT {', '.join(wanted)} FROM read_csv(${param}, header = true, columns = {{{cols}}}, "
                "ignore_errors = true)")
    if name.endswith(".parquet"):
        return f"SELECT {', '.join(f'CAST({c} AS VARCHAR) AS {c}' for c in wanted)} FROM read_parquet(${param})"
    raise ValueError(f"unsupported landing file: {path}")


def landing_floor_sql(files: list[Path]) -> tuple[str, dict[str, str]]:
    """bench/landing_floor.sql with one reader per file (UNION ALL BY NAME), and its parameters."""
    from bench.notebook import family

    parts: dict[str, list[str]] = {"events": [], "interventions": []}
    params: dict[str, str] = {}
    for i, path in enumerate(sorted(files)):
        fam = family(path)
        params[f"f{i}"] = str(path)
        parts[fam].append(_reader(path, fam, f"f{i}"))
    if not parts["events"]:
        raise ValueError("no events file among the landing files")
    if not parts["interventions"]:  # an empty relation of the same shape
        parts["interventions"].append("SELECT " + ", ".join(f"NULL::VARCHAR AS {c}" for c in _TEXT_COLUMNS["interventions"])
                                      + " WHERE false")
    sql = LANDING_FLOOR_SQL.read_text()
    for fam in ("events", "interventions"):
        assert sql.count("{" + fam + "}") == 1, f"landing_floor.sql names {{{fam}}} once, where its readers go"
        sql = sql.replace("{" + fam + "}", "\n    UNION ALL BY NAME\n    ".join(parts[fam]))
    return sql, params


def _cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _pipeline_counts(store: Path, sql: str, params: dict) -> list[tuple] | None:
    """The pipeline's stored outcome counts per scenario for the events in the landing files (not timed)."""
    import duckdb

    outcomes = sorted((store / "outcomes" / "event_outcomes").glob("event_date=*/data.parquet"))
    if not outcomes:
        return None
    import re

    events = sql.split("), iv_raw AS (")[0].split("WITH ev_raw AS (", 1)[1]
    used = set(re.findall(r"\$(f\d+)\b", events))
    con = duckdb.connect(":memory:")
    rows = con.sql("SELECT o.scenario, o.outcome, count(*) FROM read_parquet($outcomes) o "
                   f"SEMI JOIN ({events}) e USING (event_id) GROUP BY ALL ORDER BY ALL",
                   params={**{k: v for k, v in params.items() if k in used},
                           "outcomes": [str(p) for p in outcomes]}).fetchall()
    con.close()
    return [tuple(r) for r in rows]


def _compare(rows: list[tuple], pipeline: list[tuple] | None) -> dict:
    """How far the baseline's (scenario, outcome, n) rows are from the pipeline's."""
    if pipeline is None:
        return {"matches_pipeline": None}
    a = {(s, o): n for s, o, n in rows}
    b = {(s, o): n for s, o, n in pipeline}
    diff = sum(abs(a.get(k, 0) - b.get(k, 0)) for k in set(a) | set(b))
    return {"matches_pipeline": diff == 0, "pipeline_events": int(sum(b.values())), "count_difference": int(diff)}


def _landing_floor(spec: dict) -> dict:
    """bench/landing_floor.sql over the day's landing files, repeated on fresh in-memory connections."""
    import duckdb

    files = [Path(f) for f in spec["files"]]
    sql, params = landing_floor_sql(files)
    times, cpus, rows = [], [], []
    for _ in range(spec.get("repeat", 3)):
        t0, c0 = time.perf_counter(), _cpu()
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        rows = con.sql(sql, params=params).fetchall()
        con.close()
        times.append(time.perf_counter() - t0)
        cpus.append(_cpu() - c0)
    t_end = time.time()
    rows = [tuple(r) for r in rows]
    out = {"t_end": t_end, "seconds": times, "cpu": cpus, "events": int(sum(r[2] for r in rows)), "groups": len(rows),
           "files": [str(f) for f in files], "bytes": sum(f.stat().st_size for f in files)}
    if spec.get("store"):
        out.update(_compare(rows, _pipeline_counts(Path(spec["store"]), sql, params)))
    return out


def _pandas(spec: dict) -> dict:
    """The pandas notebook (bench/notebook.py) over the day's landing files, imports included."""
    t0, c0 = time.perf_counter(), _cpu()
    from bench.notebook import notebook

    t1 = time.perf_counter()
    files = [Path(f) for f in spec["files"]]
    counts = notebook(files)
    seconds, cpu = time.perf_counter() - t0, _cpu() - c0
    t_end = time.time()
    rows = [(s, o, int(n)) for s, o, n in counts[["scenario", "outcome", "n"]].itertuples(index=False)]
    out = {"t_end": t_end, "seconds": seconds, "import_seconds": t1 - t0, "cpu": cpu, "events": int(sum(r[2] for r in rows)),
           "groups": len(rows), "wilson_bounded": bool(((counts["share_lo"] <= counts["share"])
                                                        & (counts["share"] <= counts["share_hi"])).all())}
    if spec.get("store"):
        sql, params = landing_floor_sql(files)
        out.update(_compare(rows, _pipeline_counts(Path(spec["store"]), sql, params)))
    return out


def _importtime(spec: dict) -> dict:
    """`python -X importtime -c "import dagster, assets.definitions, assets.cli"` (what a run imports): the
    import time of each top-level package, the sum of its modules' own ("self") times."""
    import os
    import subprocess

    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import dagster, assets.definitions, assets.cli"],
                          cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    packages: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        own, _, name = line[len("import time:"):].split("|")
        if not own.strip().isdigit():
            continue
        top = name.strip().split(".")[0]
        packages[top] = packages.get(top, 0.0) + int(own) / 1e6
    return {"t_end": time.time(), "packages": packages, "total": sum(packages.values()),
            "error": None if proc.returncode == 0 else proc.stderr[-2000:]}


def _failures(spec: dict) -> dict:
    """The failure model's night of `docs` failing events (flywheel.failures.benchmark.scale)."""
    import tempfile

    from flywheel.failures.benchmark import scale

    with tempfile.TemporaryDirectory(dir=spec.get("work")) as tmp:
        figures = scale(int(spec["docs"]), int(spec.get("days", 14)), int(spec.get("events_per_day", 2000)),
                        int(spec.get("seed", 9)), Path(tmp))
    return {"figures": figures, "t_end": time.time()}


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    mode = spec["mode"]
    result = {"generate": _generate, "nightly": _nightly, "floor": _floor, "runinfo": _runinfo,
              "failures": _failures, "landing_floor": _landing_floor, "pandas": _pandas,
              "importtime": _importtime}[mode](spec)
    Path(argv[1]).write_text(json.dumps(result, indent=1, default=str))
    return 1 if result.get("error") else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
