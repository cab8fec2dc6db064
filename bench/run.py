"""Benchmark the nightly pipeline on this machine and write BENCHMARKS.md.

    python -m bench.run            # = make bench: 100k and 1M days, 7/30/90 days of history, backfill
    python -m bench.run --quick    # = make bench-quick: the same at a tiny size, report in the work dir
    python -m bench.run --with-10m # = make bench BENCH_10M=1: also one 10M-event day

What is measured (every measured run is a fresh `python -m bench.child` process over scratch
dirs under --work, with FLYWHEEL_LANDING / FLYWHEEL_STORE / FLYWHEEL_DB / DAGSTER_HOME pointing
there; wall time is from spawn to the end of the run, peak memory is the process's max RSS from
os.wait4):

1. Sample data, generated once and cached by its arguments: HISTORY_MAX days of history at
   --history-events per day starting --start, and, for every size N, one new day at N events (a
   separate one-day generation, the day after the history).
2. Nightly of one new day, empty store: the new day's landing files, then `flywheel run --from D
   --to D` (assets.runner.run_days, the Dagster `nightly` job in-process), for every --sizes N.
3. Backfills: the last H days of history from an empty store, `flywheel run` over every day with
   data, for every H in --history: wall and events per second. The largest H is "the full backfill".
4. Nightly of the same new day (at --history-events) on each backfilled store (7, 30, 90 days).
5. The new day and the 7 days before it rebuilt (what the nightly schedule did until issue 14; it
   now rebuilds only the days whose inputs changed, so this is the cost of a week of late reviews),
   on the largest history.
6. After the first repetition of every nightly: the engine floor over the stored partitions
   (bench/engine_floor.sql, one plain DuckDB query of the day's per-scenario outcome counts from the
   stored Parquet), best of 3, and the outcomes/* steps' time as a ratio of it.
7. After the first repetition of every empty-store nightly, on the same landing files: the engine
   floor over the landing files (bench/landing_floor.sql, one DuckDB query reading the day's JSONL /
   CSV / Parquet files and counting outcomes per scenario), best of 3, and the pandas notebook
   (bench/notebook.py, the same counts with Wilson intervals as an analyst writes them in pandas;
   up to 1M events), each with its CPU time; flywheel's end to end and landing sync as ratios of
   the floor, against issue 19's goals (the Targets section says met or missed and by how much).
8. The fixed costs of the smallest empty-store day: interpreter start, imports, the landing sync,
   run_days before the Dagster run, run start, catalog builds, GX checks, the steps, Dagster between
   them, from the child's timestamps and the run's event log; and the imports per package under
   `python -X importtime` (one extra child).

Per-step times come from the Dagster event log of the run (step start/end); a step's stage is the
first part of the asset keys it materialised (ingest, outcomes, ...), so assets added later show
up by themselves.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GiB = 1024 ** 3
VERSIONS = ("dagster", "duckdb", "polars", "pyarrow", "great-expectations", "pandas", "numpy", "rapidfuzz")
# Issue 19's goals (wall and memory of one day, ratios to the landing floor, backfill rate), and the
# earlier goals that still hold (history, outcomes stage vs the floor over the stored partitions).
TARGETS = {"e2e_1m_seconds": 20.0, "e2e_1m_floor_ratio": 4.0, "e2e_1m_rss_gib": 3.0, "sync_floor_ratio": 2.0,
           "backfill_eps": 50_000.0, "e2e_10m_seconds": 180.0, "rss_10m_gib": 8.0, "e2e_100k_seconds": 8.0,
           "history_ratio": 0.20, "floor_ratio": 5.0}
LATE_DAYS = 7  # a week of days with late reviews rebuilt with the new day (the fixed window until issue 14)


# --------------------------------------------------------------------------------------------
# configuration

@dataclass
class Config:
    sizes: list[int]
    history: list[int]
    history_events: int
    repeat: int
    schedule_window: bool
    with_10m: bool
    seed: int
    start: date
    work: Path
    out: Path
    profile: bool
    quick: bool
    cap_10m_gib: float = 16.5
    render_only: bool = False
    merge: list[Path] = field(default_factory=list)
    failure_docs: int = 1_000_000
    command: str = ""

    @property
    def history_max(self) -> int:
        return max(self.history, default=0)

    @property
    def new_day(self) -> date:
        return self.start + timedelta(days=self.history_max)


def _int_list(text: str) -> list[int]:
    out = []
    for part in text.replace(" ", "").split(","):
        if part:
            value = int(float(part.lower().replace("k", "e3").replace("m", "e6")))
            if value <= 0:
                raise argparse.ArgumentTypeError(f"must be > 0: {part}")
            out.append(value)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="tiny preset: new days of 2000 events, history 2 and 3 days of 2000, one repetition; "
                        "report goes to the work dir, not the repo's BENCHMARKS.md")
    p.add_argument("--sizes", type=_int_list, default=None,
                   help="events of the new day measured on an empty store, comma-separated (default 100k,1M)")
    p.add_argument("--history", type=_int_list, default=None,
                   help="days of history to measure the night on (default 7,30,90); '' for none")
    p.add_argument("--history-events", type=_int_list, default=None,
                   help="events per history day, also the new day's size on those stores (default 100k)")
    p.add_argument("--repeat", type=int, default=None, help="repetitions of each nightly, medians reported (default 3)")
    p.add_argument("--schedule-window", action=argparse.BooleanOptionalAction, default=None,
                   help="measure the night as the schedule runs it, new day + 7 days before it (default: on, off with --quick)")
    p.add_argument("--with-10m", action="store_true", help="also one 10M-event day on an empty store (once)")
    p.add_argument("--profile", action="store_true",
                   help="also run the largest empty-store night once more under cProfile; top functions go in the report")
    p.add_argument("--cap-10m-gib", type=float, default=16.5,
                   help="kill the 10M-event night when its RSS passes this (default 16.5: the goal is 8 GiB, so a miss "
                        "is still measured, not killed); "
                        "every other run is killed above 85%% of the machine's memory, to spare other work")
    p.add_argument("--render-only", action="store_true",
                   help="measure nothing: write the report again from WORK/results.json of the last run")
    p.add_argument("--merge", type=Path, action="append", default=[],
                   help="with --render-only: also report the nights of another bench run's results.json (e.g. a "
                        "separate 10M-event run), marked as such")
    p.add_argument("--failure-docs", type=int, default=None,
                   help="failing events of the failure model's big night (default 1M; --quick: 5000; 0: skip it)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start", type=date.fromisoformat, default=date(2025, 1, 1), help="first history day (default 2025-01-01)")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default bench/.work/full or bench/.work/quick)")
    p.add_argument("--out", type=Path, default=None,
                   help="report path (default BENCHMARKS.md at the repo root; with --quick, WORK/BENCHMARKS.md)")
    return p


def make_config(argv: list[str] | None) -> Config:
    args = build_parser().parse_args(argv)
    quick = args.quick
    work = (args.work or REPO / "bench" / ".work" / ("quick" if quick else "full")).resolve()
    hist_events = args.history_events[0] if args.history_events else (2000 if quick else 100_000)
    sizes = args.sizes if args.sizes is not None else ([2000] if quick else [100_000, 1_000_000])
    if args.with_10m and 10_000_000 not in sizes:
        sizes = sizes + [10_000_000]
    cfg = Config(
        sizes=sizes,
        history=args.history if args.history is not None else ([2, 3] if quick else [7, 30, 90]),
        history_events=hist_events,
        repeat=max(1, args.repeat if args.repeat is not None else (1 if quick else 3)),
        schedule_window=args.schedule_window if args.schedule_window is not None else not quick,
        with_10m=args.with_10m,
        seed=args.seed,
        start=args.start,
        work=work,
        out=(args.out or (work / "BENCHMARKS.md" if quick else REPO / "BENCHMARKS.md")).resolve(),
        profile=args.profile,
        quick=quick,
        cap_10m_gib=args.cap_10m_gib,
        render_only=args.render_only,
        merge=args.merge,
        failure_docs=args.failure_docs if args.failure_docs is not None else (5000 if quick else 1_000_000),
    )
    today = datetime.now(timezone.utc).date()
    if cfg.new_day >= today:
        raise SystemExit(f"bench: the new day {cfg.new_day} must be before today ({today}); use an earlier --start")
    cfg.command = _command(argv)
    return cfg


def _command(argv: list[str] | None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    direct = " ".join([".venv/bin/python -m bench.run", *args])
    if os.environ.get("MAKELEVEL"):
        target = "bench-quick" if "--quick" in args else "bench"
        extra = " BENCH_10M=1" if "--with-10m" in args and target == "bench" else ""
        return f"make {target}{extra}  (runs `{direct}`)"
    return direct


def label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


# --------------------------------------------------------------------------------------------
# running children

@dataclass
class Measured:
    """One measured child process."""

    name: str
    wall: float            # spawn -> end of the measured work (s)
    process_wall: float    # spawn -> exit (s)
    maxrss: int            # bytes: max of the sampled process-tree RSS and the kernel's max RSS (os.wait4)
    cpu: float             # user + sys CPU seconds of the process and its waited-for children
    result: dict
    load_before: float | None
    load_after: float | None
    code: str = ""         # digest of the pipeline's code when the run started
    single_maxrss: int = 0  # the largest single process (kernel max RSS from os.wait4)
    processes: int = 1      # most processes alive at once in the tree


class Runner:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.live = cfg.work / "live"
        self.logs = cfg.work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_") and k != "DAGSTER_HOME"}
        env.update(FLYWHEEL_LANDING=str(self.live / "landing"), FLYWHEEL_STORE=str(self.live / "store"),
                   FLYWHEEL_DB=str(self.live / "flywheel.duckdb"), DAGSTER_HOME=str(self.live / "dagster_home"),
                   PYTHONUNBUFFERED="1")
        return env

    def child(self, name: str, spec: dict, allow_failure: bool = False, rss_cap: int | None = None) -> Measured:
        self.count += 1
        stem = f"{self.count:02d}-{name.replace(' ', '_').replace('/', '_')}"
        spec_path, result_path, log_path = (self.logs / f"{stem}.spec.json", self.logs / f"{stem}.result.json",
                                            self.logs / f"{stem}.log")
        spec_path.write_text(json.dumps(spec, default=str))
        result_path.unlink(missing_ok=True)
        print(f"bench: {name} ...", flush=True)
        load_before = os.getloadavg()[0]
        code = code_digest()
        with open(log_path, "wb") as log:
            t0 = time.time()
            proc = subprocess.Popen([sys.executable, "-m", "bench.child", str(spec_path), str(result_path)],
                                    cwd=REPO, env=self.env(), stdout=log, stderr=subprocess.STDOUT)
            cap = rss_cap or int(0.85 * (_mem_total() or 64 * GiB))
            killed = None
            tree_peak, most = 0, 1
            while True:  # sample the process tree's memory; kill it if it passes the cap
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                pids = _tree(proc.pid)
                rss = sum(_rss(p) for p in pids)
                tree_peak, most = max(tree_peak, rss), max(most, len(pids))
                if killed is None and rss > cap:
                    killed = (f"killed by the bench when its RSS reached {rss / GiB:.1f} GiB (cap {cap / GiB:.1f} GiB), "
                              f"{time.time() - t0:.0f} s after start")
                    for p in reversed(pids):
                        try:
                            os.kill(p, 9)
                        except OSError:
                            pass
                time.sleep(0.2)
            t_exit = time.time()
            proc.returncode = os.waitstatus_to_exitcode(status)
        result = json.loads(result_path.read_text()) if result_path.exists() else {}
        if proc.returncode != 0 or not result:
            tail = log_path.read_text(errors="replace")[-3000:]
            message = killed or result.get("error") or f"exit code {proc.returncode}"
            if killed and spec.get("mode") == "nightly":
                message += self._running_step()
            if not allow_failure:
                raise SystemExit(f"bench: {name} failed: {message}\n--- {log_path} (tail) ---\n{tail}")
            result = {"error": message, "log": str(log_path)}
        wall = (result.get("t_end") or t_exit) - t0
        single = usage.ru_maxrss * 1024
        m = Measured(name, wall, t_exit - t0, max(single, tree_peak), usage.ru_utime + usage.ru_stime, result,
                     load_before, os.getloadavg()[0], code, single, most)
        rss = f"{m.maxrss / GiB:.2f} GiB"
        print(f"bench: {name}: {wall:.1f} s, peak RSS {rss}" + (f"  FAILED: {result['error']}" if result.get("error") else ""),
              flush=True)
        return m

    def _running_step(self) -> str:
        """Where a killed nightly was: the step running, from the run's event log (read by a child)."""
        info_path = self.logs / "runinfo.json"
        spec_path = self.logs / "runinfo.spec.json"
        spec_path.write_text(json.dumps({"mode": "runinfo"}))
        subprocess.run([sys.executable, "-m", "bench.child", str(spec_path), str(info_path)], cwd=REPO, env=self.env(),
                       capture_output=True)
        try:
            steps = json.loads(info_path.read_text()).get("steps", [])
        except (OSError, ValueError):
            return ""
        done = [f"{s['step']} {s['seconds']:.0f} s" for s in steps if s.get("seconds") is not None]
        running = [s["step"] for s in steps if s.get("seconds") is None]
        return (f"; in step {', '.join(running) or '(none: before the job)'}"
                + (f" after {', '.join(done)}" if done else ""))

    # ---- scratch state ------------------------------------------------------------------

    def reset_live(self, snapshot: Path | None = None) -> None:
        if self.live.exists():
            shutil.rmtree(self.live)
        if snapshot is None:
            for kind in ("events", "interventions"):
                (self.live / "landing" / kind).mkdir(parents=True)
            (self.live / "dagster_home").mkdir(parents=True)
        else:
            self.live.mkdir(parents=True)
            # Landing files are hard links (same inode, same mtime: the sync sees them unchanged).
            shutil.copytree(snapshot / "landing", self.live / "landing", copy_function=os.link)
            for name in ("store", "dagster_home"):
                if (snapshot / name).exists():
                    shutil.copytree(snapshot / name, self.live / name)
            if (snapshot / "flywheel.duckdb").exists():
                shutil.copy2(snapshot / "flywheel.duckdb", self.live / "flywheel.duckdb")
        (self.live / "dagster_home").mkdir(exist_ok=True)
        (self.live / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    def link_day(self, src: "Source") -> list[Path]:
        """Put the new day's landing files in place; part k > 0 of a big day gets a `-pKK` name suffix.
        Returns the files linked."""
        linked = []
        for k, part in enumerate(src.parts or [src]):
            for f in part.day_files([part.start]):
                rel = f.relative_to(part.landing)
                if k:
                    stem, dot, ext = rel.name.partition(".")
                    rel = rel.with_name(f"{stem}-p{k:02d}{dot}{ext}")
                dest = self.live / "landing" / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.link(f, dest)
                linked.append(dest)
        return linked

    def link_landing(self, files: list[Path], source_landing: Path) -> None:
        for f in files:
            dest = self.live / "landing" / f.relative_to(source_landing)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(f, dest)

    def snapshot(self, name: str) -> Path:
        dest = self.cfg.work / "snapshots" / name
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.live, dest)
        return dest


# --------------------------------------------------------------------------------------------
# sample data

def _mem_total() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _tree(root: int) -> list[int]:
    """`root` and every process descending from it (worker pools included), parents first."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def code_digest() -> str:
    """A short digest of the pipeline's code (flywheel/, assets/, expectations/): did it change between runs?"""
    h = hashlib.blake2b(digest_size=5)
    for folder in ("flywheel", "assets", "expectations"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix in (".py", ".sql", ".json", ".yaml") and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(REPO)).encode())
                try:
                    h.update(path.read_bytes())
                except OSError:
                    pass
    return h.hexdigest()


def _generator_digest() -> str:
    h = hashlib.blake2b(digest_size=6)
    for path in sorted((REPO / "flywheel" / "generate").glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@dataclass
class Source:
    """Generated landing files of one generator call."""

    landing: Path
    days: int
    events_per_day: int
    start: date
    seconds: float | None = None   # generation time, None when reused from the cache
    files: list[dict] = field(default_factory=list)
    seed: int = 0
    parts: list["Source"] = field(default_factory=list)  # a big day: several one-day generations side by side
    reused: bool = False            # from the cache of an earlier bench run
    maxrss: int | None = None       # the generator's peak memory

    def day_files(self, days: list[date]) -> list[Path]:
        wanted = {d.isoformat() for d in days}
        return sorted(self.landing / f["path"] for f in self.files if f["day"] in wanted)

    def records(self, days: list[date], family: str) -> int:
        wanted = {d.isoformat() for d in days}
        return sum(f["records"] for f in self.files if f["day"] in wanted and f["family"] == family)


def generate(runner: Runner, days: int, events_per_day: int, seed: int, start: date, allow_failure: bool = False) -> Source | None:
    key = f"{label(events_per_day)}x{days}-seed{seed}-{start.isoformat()}-{_generator_digest()}"
    folder = runner.cfg.work / "gen" / key
    stamp = folder / "done.json"
    reused = stamp.exists()
    if not reused:
        if folder.exists():
            shutil.rmtree(folder)
        m = runner.child(f"generate {days} day(s) x {label(events_per_day)}", {
            "mode": "generate", "landing": str(folder / "landing"), "days": days, "events_per_day": events_per_day,
            "seed": seed, "start": start.isoformat()}, allow_failure=allow_failure)
        if m.result.get("error"):
            return None
        stamp.write_text(json.dumps({"seconds": m.wall, "maxrss": m.maxrss}))
    else:
        print(f"bench: reusing generated data {folder}", flush=True)
    return cached_source(runner.cfg, days, events_per_day, seed, start, reused)


def cached_source(cfg: Config, days: int, events_per_day: int, seed: int, start: date, reused: bool = True) -> Source | None:
    folder = cfg.work / "gen" / f"{label(events_per_day)}x{days}-seed{seed}-{start.isoformat()}-{_generator_digest()}"
    stamp = folder / "done.json"
    if not stamp.exists():
        return None
    truth = json.loads((folder / "landing" / "truth.json").read_text())
    gen = json.loads(stamp.read_text())
    return Source(folder / "landing", days, events_per_day, start, gen.get("seconds"), truth.get("files", []), seed,
                  reused=reused, maxrss=gen.get("maxrss"))


PART = 1_000_000  # the generator holds a whole day in memory (~7 GiB at 1M): bigger days come in parts


def generate_day(runner: Runner, events: int, day: date) -> Source | None:
    """The new day: one one-day generation, or for more than PART events, several side by side."""
    seed = runner.cfg.seed + 1
    if events <= PART:
        return generate(runner, 1, events, seed, day, allow_failure=False)
    sizes = [PART] * (events // PART) + ([events % PART] if events % PART else [])
    parts = []
    for k, n in enumerate(sizes):
        part = generate(runner, 1, n, seed + 1000 * k, day, allow_failure=True)
        if part is None:
            return None
        parts.append(part)
    secs = [p.seconds for p in parts if p.seconds is not None]
    return Source(parts[0].landing, 1, events, day, sum(secs) if secs else None, [], seed, parts,
                  reused=all(p.reused for p in parts), maxrss=max((p.maxrss or 0) for p in parts))


# --------------------------------------------------------------------------------------------
# measurements

@dataclass
class Night:
    """One nightly line: repetitions of the same run on the same starting state."""

    name: str
    new_events: int
    history_days: int
    history_events: int
    first: str
    last: str
    reps: list[Measured]
    floor: Measured | None = None
    note: str = ""
    landing: Measured | None = None   # bench/landing_floor.sql over the day's landing files
    pandas: Measured | None = None    # bench/notebook.py over the same files

    @property
    def ok(self) -> bool:
        return all(not r.result.get("error") for r in self.reps)


PANDAS_MAX = 1_000_000  # the pandas notebook holds the day's records as Python objects: not run beyond this


def measure_night(runner: Runner, name: str, snapshot: Path | None, new: Source, first: date, last: date,
                  history_days: int, reps: int, allow_failure: bool = False, note: str = "",
                  rss_cap: int | None = None, baselines: bool = True) -> Night:
    """Repetitions of one nightly run; after the first, the engine floor over the stored partitions
    and (`baselines`) the landing-file floor and the pandas notebook over the day's landing files."""
    out = []
    floor = landing = pandas = None
    for i in range(reps):
        runner.reset_live(snapshot)
        files = runner.link_day(new)
        m = runner.child(f"{name} (rep {i + 1}/{reps})", {"mode": "nightly", "first": first.isoformat(), "last": last.isoformat()},
                         allow_failure=allow_failure, rss_cap=rss_cap)
        out.append(m)
        if m.result.get("error"):
            break
        if i == 0:
            floor = runner.child(f"{name}: engine floor", {"mode": "floor", "store": str(runner.live / "store"),
                                                          "day": new.start.isoformat(), "repeat": 3})
            if baselines:
                base = {"files": [str(f) for f in files], "store": str(runner.live / "store")}
                landing = runner.child(f"{name}: engine floor over the landing files",
                                       {"mode": "landing_floor", **base,
                                        "repeat": 1 if new.events_per_day >= 10_000_000 else 3}, allow_failure=True)
                if new.events_per_day <= PANDAS_MAX:
                    pandas = runner.child(f"{name}: pandas notebook", {"mode": "pandas", **base}, allow_failure=True)
    return Night(name, new.events_per_day, history_days, runner.cfg.history_events if history_days else 0,
                 first.isoformat(), last.isoformat(), out, floor, note, landing, pandas)


@dataclass
class Backfill:
    days: int
    events_per_day: int
    records: dict
    run: Measured

    @property
    def events(self) -> int:
        return int(self.run.result.get("events_stored_total", 0))

    @property
    def eps(self) -> float:
        return self.events / self.run.wall if self.run.wall else 0.0


def measure_backfill(runner: Runner, hist: Source, days: int) -> tuple[Backfill, Path]:
    chosen = [hist.start + timedelta(days=hist.days - days + i) for i in range(days)]
    runner.reset_live(None)
    runner.link_landing(hist.day_files(chosen), hist.landing)
    m = runner.child(f"backfill {days} days x {label(hist.events_per_day)}", {"mode": "nightly", "first": None, "last": None})
    records = {"events": hist.records(chosen, "events"), "interventions": hist.records(chosen, "interventions")}
    return Backfill(days, hist.events_per_day, records, m), runner.snapshot(f"history-{days}")


def profile_night(runner: Runner, new: Source) -> dict:
    """One more empty-store night of `new` under cProfile; the top functions as text."""
    import io
    import pstats

    prof = runner.cfg.work / f"profile-{label(new.events_per_day)}.prof"
    runner.reset_live(None)
    runner.link_day(new)
    m = runner.child(f"profile nightly {label(new.events_per_day)}", {
        "mode": "nightly", "first": new.start.isoformat(), "last": new.start.isoformat(), "profile": str(prof),
        "serial_sync": True})
    texts = {}
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(str(prof), stream=buf).strip_dirs().sort_stats(key).print_stats(30)
        texts[key] = _trim_pstats(buf.getvalue())
    (runner.cfg.work / f"profile-{label(new.events_per_day)}.txt").write_text(
        "\n\n".join(f"== by {k} ==\n{v}" for k, v in texts.items()))
    return {"events": new.events_per_day, "wall": m.wall, "prof": str(prof), "texts": texts,
            "steps": m.result.get("steps", []), "serial_sync": m.result.get("serial_sync"),
            "timed": {k: v["seconds"] for k, v in m.result.get("timed", {}).items()},
            "timed_first_sync": (m.result.get("timed", {}).get("flywheel.ingest.sync:sync_landing", {}).get("each") or [None])[0]}


def _trim_pstats(text: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith("ncalls"):
            return "\n".join(lines[i:]).rstrip()
    return text.rstrip()


# --------------------------------------------------------------------------------------------
# summaries

def _median(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def stage_of(step: dict) -> str:
    tops = {a.split("/")[0] for a in step.get("assets", [])}
    return tops.pop() if len(tops) == 1 else ("mixed" if tops else "other")


def rep_summary(m: Measured) -> dict:
    r = m.result
    steps = r.get("steps", [])
    stages: dict[str, float] = {}
    for s in steps:
        stages[stage_of(s)] = stages.get(stage_of(s), 0.0) + (s["seconds"] or 0.0)
    run = r.get("run") or {}
    job = (run["end"] - run["start"]) if run.get("start") and run.get("end") else None
    syncs = r.get("timed", {}).get("flywheel.ingest.sync:sync_landing", {}).get("each", [])
    t_spawn = r["t_end"] - m.wall if r.get("t_end") else None
    return {
        "wall": m.wall,
        "startup": (r["t_ready"] - t_spawn) if t_spawn and r.get("t_ready") else None,
        "sync_before_job": syncs[0] if syncs else None,
        "job": job,
        "steps": {s["step"]: s["seconds"] for s in steps},
        "stages": stages,
        "timed": {k: v["seconds"] for k, v in r.get("timed", {}).items()},
        "timed_calls": {k: v["calls"] for k, v in r.get("timed", {}).items()},
        "rss": m.maxrss,
        "cpu": m.cpu,
    }


def night_summary(n: Night) -> dict:
    reps = [rep_summary(m) for m in n.reps if not m.result.get("error")]
    if not reps:
        return {"ok": False, "error": n.reps[-1].result.get("error") if n.reps else "not run",
                "rss": max((m.maxrss for m in n.reps), default=0)}
    keys = lambda field: sorted({k for r in reps for k in r[field]})  # noqa: E731
    s = {
        "ok": n.ok,
        "wall": _median([r["wall"] for r in reps]),
        "wall_min": min(r["wall"] for r in reps),
        "wall_max": max(r["wall"] for r in reps),
        "startup": _median([r["startup"] for r in reps]),
        "sync_before_job": _median([r["sync_before_job"] for r in reps]),
        "job": _median([r["job"] for r in reps]),
        "steps": {k: _median([r["steps"].get(k) for r in reps]) for k in keys("steps")},
        "stages": {k: _median([r["stages"].get(k) for r in reps]) for k in keys("stages")},
        "timed": {k: _median([r["timed"].get(k) for r in reps]) for k in keys("timed")},
        "timed_calls": reps[0]["timed_calls"],
        "rss": max(r["rss"] for r in reps),
        "cpu": _median([r["cpu"] for r in reps]),
        "code": ",".join(sorted({m.code for m in n.reps if m.code})),
        "processes": max(m.processes for m in n.reps),
        "reps": len(reps),
        "step_order": [s["step"] for s in n.reps[0].result.get("steps", [])],
        "step_assets": {s["step"]: s["assets"] for s in n.reps[0].result.get("steps", [])},
        "step_checks": {s["step"]: s["checks"] for s in n.reps[0].result.get("steps", [])},
        "step_rss": {k: max((st.get("peak_rss") or 0 for m in n.reps for st in m.result.get("steps", []) if st["step"] == k),
                            default=0) or None for k in keys("steps")},
        "rss_before_job": max((m.result.get("peak_rss_before_job") or 0 for m in n.reps), default=0) or None,
        "events_in_range": n.reps[0].result.get("events_stored_in_range"),
        "load": max((m.load_before for m in n.reps if m.load_before is not None), default=None),
    }
    if n.floor is not None and not n.floor.result.get("error"):
        fl = n.floor.result
        s["floor"] = min(fl["seconds"])
        s["floor_first"] = fl["seconds"][0]
        s["floor_match"] = fl.get("matches_pipeline")
        outcomes = s["stages"].get("outcomes")
        s["floor_ratio"] = outcomes / s["floor"] if outcomes and s["floor"] else None
    s.update(baseline_summary(n, s))
    s["fixed"] = fixed_costs(n.reps[0]) if n.reps and not n.reps[0].result.get("error") else None
    return s


def baseline_summary(n: Night, s: dict) -> dict:
    """The landing-file floor and the pandas notebook of a night, and flywheel's ratios to the floor."""
    out: dict = {}
    if n.landing is not None and not n.landing.result.get("error"):
        r = n.landing.result
        best = min(range(len(r["seconds"])), key=lambda i: r["seconds"][i])
        out["landing"] = {"seconds": r["seconds"][best], "first": r["seconds"][0], "cpu": r["cpu"][best],
                          "repeat": len(r["seconds"]), "events": r["events"], "bytes": r.get("bytes"),
                          "matches": r.get("matches_pipeline"), "diff": r.get("count_difference"),
                          "pipeline_events": r.get("pipeline_events"), "rss": n.landing.maxrss}
    elif n.landing is not None:
        out["landing"] = {"error": n.landing.result.get("error")}
    if n.pandas is not None and not n.pandas.result.get("error"):
        r = n.pandas.result
        out["pandas"] = {"seconds": r["seconds"], "cpu": r["cpu"], "events": r["events"], "rss": n.pandas.maxrss,
                         "wall": n.pandas.wall, "matches": r.get("matches_pipeline"), "diff": r.get("count_difference"),
                         "pipeline_events": r.get("pipeline_events"),
                         "wilson_bounded": r.get("wilson_bounded")}
    elif n.pandas is not None:
        out["pandas"] = {"error": n.pandas.result.get("error")}
    floor = (out.get("landing") or {}).get("seconds")
    if floor:
        out["ratios"] = {"wall": s["wall"] / floor if s.get("wall") else None,
                         "sync": s["sync_before_job"] / floor if s.get("sync_before_job") else None,
                         "cpu": s["cpu"] / out["landing"]["cpu"] if s.get("cpu") and out["landing"]["cpu"] else None,
                         "pandas": out["pandas"]["seconds"] / floor if (out.get("pandas") or {}).get("seconds") else None}
    return out


def fixed_costs(m: Measured) -> dict | None:
    """Where the wall time of one run went, from the child's timestamps and the Dagster run's step
    times: interpreter start, imports, the landing sync, run_days before the Dagster run, the run's
    start until its first step, the steps (catalog builds and GX checks inside them apart), Dagster
    between the steps, and the end. The parts add up to the wall time."""
    r = m.result
    run = r.get("run") or {}
    steps = [st for st in r.get("steps", []) if st.get("start") and st.get("end")]
    if not (r.get("t_end") and r.get("t_start") and r.get("t_ready") and run.get("start") and run.get("end") and steps):
        return None
    spawn = r["t_end"] - m.wall
    timed = r.get("timed", {})
    syncs = timed.get("flywheel.ingest.sync:sync_landing", {}).get("each", [])
    sync0 = syncs[0] if syncs else 0.0
    first_step, last_step = min(st["start"] for st in steps), max(st["end"] for st in steps)
    step_sum = sum(st["seconds"] or 0.0 for st in steps)
    catalog = timed.get("flywheel.catalog:build_catalog", {}).get("seconds", 0.0)
    gx = timed.get("assets.checks:gx_result", {}).get("seconds", 0.0)
    eip = (timed.get("dagster:JobDefinition.execute_in_process", {}).get("starts") or [None])[0]
    before_run = (eip if eip else run["start"]) - r["t_ready"] - sync0
    parts = {
        "interpreter start": r["t_start"] - spawn,
        "imports (dagster, assets, flywheel)": r.get("imports_seconds", 0.0),
        "harness setup": r["t_ready"] - r["t_start"] - r.get("imports_seconds", 0.0),
        "landing sync": sync0,
        "run_days after the sync, before execute_in_process (manifests, job, instance)" if eip else
        "run_days after the sync, before the Dagster run starts": before_run,
    }
    if eip:
        parts["execute_in_process -> Dagster run start (run record, job snapshot)"] = run["start"] - eip
    parts.update({
        "Dagster run start -> first step": first_step - run["start"],
        "catalog builds (in steps)": catalog,
        "GX checks (in steps)": gx,
        "steps' own work": step_sum - catalog - gx,
        "Dagster between steps": (last_step - first_step) - step_sum,
        "last step -> run end -> process done": r["t_end"] - last_step,
    })
    before = {k.split(":")[1]: v["seconds"] for k, v in timed.items()
              if k in ("flywheel.ingest.manifest:load_manifests", "assets.runner:dagster_instance",
                       "assets.runner:fail_dead_runs")}
    return {"wall": m.wall, "parts": parts, "runs": run.get("runs", 1), "before_run": before, "catalog_calls": len(
        timed.get("flywheel.catalog:build_catalog", {}).get("each", []))}


# --------------------------------------------------------------------------------------------
# report

def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for name in VERSIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    git = {}
    try:
        git["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                       text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
        git["uncommitted_files"] = len([ln for ln in dirty.splitlines() if ln.strip()])
    except (OSError, subprocess.CalledProcessError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_bytes": mem, "os": platform.platform(),
            "versions": versions, "git": git}


def fmt_s(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def fmt_gib(v: float | None) -> str:
    return "–" if v is None else f"{v / GiB:.2f}"


def render(cfg: Config, info: dict, nights: list[Night], backfills: list[Backfill], sources: dict,
           profile: dict | None, started: datetime, finished: datetime, importtime: dict | None = None) -> tuple[str, dict]:
    summaries = {n.name: night_summary(n) for n in nights}
    ok_nights = [n for n in nights if summaries[n.name].get("ok")]
    out: list[str] = []
    w = out.append
    v = info["versions"]
    w("# Benchmarks" + (" (quick, tiny sizes: figures say nothing about performance)" if cfg.quick else ""))
    w("")
    w(f"Measured {finished.strftime('%Y-%m-%d %H:%M UTC')} (run took {(finished - started).total_seconds() / 60:.1f} min) "
      f"with `{cfg.command}`.")
    w("")
    w(f"- machine: {info['cpu']}, {info['cores']} cores, {fmt_gib(info['memory_bytes'])} GiB memory; {info['os']}")
    w("- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    if info.get("git"):
        g = info["git"]
        w(f"- code: commit {g.get('commit')}" + (f" plus {g['uncommitted_files']} uncommitted files (others were editing the "
                                                  f"repo concurrently)" if g.get("uncommitted_files") else ""))
    runs = [(n.name, m) for n in nights for m in n.reps] + [(f"backfill {b.days} d", b.run) for b in backfills]
    digests: dict[str, list[str]] = {}
    for name, m in runs:
        if m.code:
            digests.setdefault(m.code, [])
            if name not in digests[m.code]:
                digests[m.code].append(name)
    if len(digests) == 1:
        w(f"- pipeline code (digest of flywheel/, assets/, expectations/): the same for every measured run ({next(iter(digests))})")
    elif digests:
        w("- pipeline code **changed during the bench** (others were editing the repo): the *code* column says which "
          "digest of flywheel/, assets/, expectations/ each line ran on: "
          + "; ".join(f"{d}: {', '.join(names)}" for d, names in digests.items()))
    loads = [x for x in [m.load_before for n in nights for m in n.reps] + [b.run.load_before for b in backfills]
             if x is not None]
    if loads:
        w(f"- 1-minute load average just before each measured run: {min(loads):.1f} to {max(loads):.1f} on "
          f"{info['cores']} cores (the *load* columns; other work may run on this machine at the same time, and a "
          f"previous bench run's tail counts too): wall times are inflated where it is high, CPU times much less so")
    w("")
    w("Every measured run is a fresh process (`python -m bench.child`) running `assets.runner.run_days`, the code "
      "behind `flywheel run`: the landing sync, then the Dagster `nightly` job in-process, with "
      "FLYWHEEL_LANDING / FLYWHEEL_STORE / FLYWHEEL_DB / DAGSTER_HOME in a scratch folder. "
      "**Wall** is from process spawn to the end of the run (interpreter start and imports included); "
      "**peak RSS** is the peak resident memory of the process and any worker processes it starts, summed (sampled "
      "every 0.2 s by the parent, and never below the kernel's max RSS of the largest single process from os.wait4). "
      "Step times are from the Dagster event log. "
      f"Nightly figures are medians of {cfg.repeat} repetition(s) from the same starting state (peak RSS: the max).")
    w("")

    # ---- nightly table
    stages = sorted({st for n in ok_nights for st in summaries[n.name]["stages"]},
                    key=lambda s: (s not in ("ingest", "outcomes"), s != "ingest", s))
    w("## Nightly run of one new day")
    w("")
    header = ["run", "new day events", "history", "days run", "wall end to end (s)", "startup + imports (s)",
              "landing sync (s)", "Dagster job (s)"] + [f"{s} steps (s)" for s in stages] + ["peak RSS (GiB)", "CPU (s)", "wall min–max (s)", "load", "code"]
    w("| " + " | ".join(header) + " |")
    w("|" + "---|" * len(header))
    for n in nights:
        s = summaries[n.name]
        hist = f"{n.history_days} d × {label(n.history_events)}" if n.history_days else "empty store"
        days_run = n.first if n.first == n.last else f"{n.first} .. {n.last}"
        if not s.get("ok"):
            w(f"| {n.name} | {label(n.new_events)} | {hist} | {days_run} | FAILED: {s.get('error')} | | | |"
              + " |" * len(stages) + f" {fmt_gib(s.get('rss'))} | | | | |")
            continue
        row = [n.name, label(n.new_events), hist, days_run, fmt_s(s["wall"]), fmt_s(s["startup"]),
               fmt_s(s["sync_before_job"]), fmt_s(s["job"])] + [fmt_s(s["stages"].get(st)) for st in stages] + [
               fmt_gib(s["rss"]), fmt_s(s["cpu"]), f"{fmt_s(s['wall_min'])}–{fmt_s(s['wall_max'])}", _load(s['load']), s.get("code") or "–"]
        w("| " + " | ".join(row) + " |")
    w("")
    w("*landing sync* is the read of new landing files that `flywheel run` does before the job; the steps' own "
      "(second) sync then finds nothing new. *Dagster job* is run start to run end (a backfill's several runs: the "
      "first start to the last end); the stage columns sum the step "
      "times whose assets share that first key part. *CPU* is user + sys time of the process and its worker processes (all threads).")
    w("")

    # ---- per step (nights, then backfills)
    columns = [(n.name, summaries[n.name]) for n in ok_nights]
    for b in backfills:
        bs = night_summary(Night(f"backfill {b.days} d", 0, 0, 0, "", "", [b.run]))
        if bs.get("ok"):
            columns.append((f"backfill {b.days} d × {label(b.events_per_day)}", bs))
    if columns:
        order: list[str] = []
        assets_of: dict = {}
        checks_of: dict = {}
        for _, cs in columns:
            order += [st for st in cs["step_order"] if st not in order]
            assets_of.update(cs["step_assets"])
            checks_of.update(cs["step_checks"])
        cols = [name for name, _ in columns]
        w("## Per asset (Dagster step) wall time, seconds")
        w("")
        w("A backfill builds its range in several Dagster runs; its columns sum each step over them.")
        w("")
        w("| step | assets (checks) | " + " | ".join(cols) + " |")
        w("|---|---|" + "---|" * len(cols))
        w("| *landing sync, before the job* | | " + " | ".join(fmt_s(cs["sync_before_job"]) for _, cs in columns) + " |")
        for st in order:
            desc = ", ".join(assets_of.get(st, []))
            if checks_of.get(st):
                desc += " (" + ", ".join(c.split(":", 1)[1] for c in checks_of[st]) + ")"
            w(f"| {st} | {desc} | " + " | ".join(fmt_s(cs["steps"].get(st)) for _, cs in columns) + " |")
        w("| **sum of steps** | | " + " | ".join(fmt_s(sum(x for x in cs["steps"].values() if x)) for _, cs in columns) + " |")
        w("| **wall end to end** | | " + " | ".join(fmt_s(cs["wall"]) for _, cs in columns) + " |")
        timed = sorted({k for _, cs in columns for k in cs["timed"]})
        if timed:
            w("")
            w("Inside the run (total over every call, calls in brackets; the first `sync_landing` is the one before the "
              "job): the checks are evaluated inside their asset's step, and assets rebuild the analysts' catalog.")
            w("")
            w("| function | " + " | ".join(cols) + " |")
            w("|---|" + "---|" * len(cols))
            for k in timed:
                w(f"| `{k.split(':')[1]}` | " + " | ".join(
                    f"{fmt_s(cs['timed'].get(k))} ({cs['timed_calls'].get(k, 0)})" for _, cs in columns) + " |")
        mem_cols = [(name, cs) for name, cs in columns if any(cs["step_rss"].values()) or cs["rss_before_job"]]
        if mem_cols:
            w("")
            w("Peak memory (RSS, GiB) during each step, sampled every 0.2 s inside the main process (its RSS includes "
              "what earlier steps left allocated; worker processes of the landing sync, if any, are not in these rows "
              "but are in the process-tree peak):")
            w("")
            w("| step | " + " | ".join(name for name, _ in mem_cols) + " |")
            w("|---|" + "---|" * len(mem_cols))
            w("| *landing sync, before the job* | " + " | ".join(fmt_gib(cs["rss_before_job"]) for _, cs in mem_cols) + " |")
            for st in order:
                w(f"| {st} | " + " | ".join(fmt_gib(cs["step_rss"].get(st)) for _, cs in mem_cols) + " |")
            w("| **peak, process tree** | " + " | ".join(fmt_gib(cs["rss"]) for _, cs in mem_cols) + " |")
        w("")

    # ---- backfill
    if backfills:
        w("## Backfill from an empty store")
        w("")
        w("| days | events per day | landing records (events + interventions) | events stored | wall (s) | events/s | peak RSS (GiB) | CPU (s) | load | code |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for b in backfills:
            w(f"| {b.days} | {label(b.events_per_day)} | {b.records['events']:,} + {b.records['interventions']:,} | "
              f"{b.events:,} | {fmt_s(b.run.wall)} | {b.eps:,.0f} | {fmt_gib(b.run.maxrss)} | {fmt_s(b.run.cpu)} | {_load(b.run.load_before)} | {b.run.code or '–'} |")
        w("")
        w("`flywheel run` over every day with data (one Dagster run for the whole range). Events stored includes "
          "the ~1% late events of the day before the first file. The largest is the full backfill; the others "
          "build the 7- and 30-day stores the history lines start from.")
        w("")

    # ---- floor
    floors = [n for n in ok_nights if summaries[n.name].get("floor") is not None]
    if floors:
        w("## Engine floor over the stored partitions: outcomes stage vs one plain DuckDB query")
        w("")
        w("| run | events of the day | floor query (s, best of 3; first) | outcomes/* steps (s) | ratio | same counts as the pipeline |")
        w("|---|---|---|---|---|---|")
        for n in floors:
            s = summaries[n.name]
            ev = s.get('events_in_range')
            w(f"| {n.name} | {f'{ev:,}' if ev else '–'} | {s['floor']:.3f}; {s['floor_first']:.3f} | "
              f"{fmt_s(s['stages'].get('outcomes'))} | {s['floor_ratio']:.1f}× | "
              f"{'yes' if s['floor_match'] else ('no' if s['floor_match'] is False else '–')} |")
        w("")
        w("The floor is `bench/engine_floor.sql`: per-scenario outcome counts of the day from the stored events and "
          "interventions Parquet partitions (same resolution rules, no edit distances, nothing written), each run on a "
          "fresh in-memory connection in a separate process after the nightly.")
        w("")

    out += render_baselines(nights, summaries)
    out += render_fixed_costs(nights, summaries, importtime)

    # ---- targets
    targets = evaluate_targets(cfg, nights, summaries, backfills)
    w("## Targets")
    w("")
    w("| target | measured | | by how much |")
    w("|---|---|---|---|")
    for t in targets:
        w(f"| {t['target']} | {t['measured']} | {t['verdict']} | {t.get('by') or ''} |")
    w("")

    # ---- data
    w("## What was run")
    w("")
    for kind, src in sources.items():
        if src is None:
            continue
        gen = ("generation time unknown" if src.seconds is None else f"generated in {fmt_s(src.seconds)} s") + (
            f", peak {fmt_gib(src.maxrss)} GiB" if src.maxrss else "") + ("; cached from an earlier bench run" if src.reused else "")
        if src.parts:
            w(f"- {kind}: {len(src.parts)} one-day generations side by side (the generator holds a day in memory, "
              f"~7 GiB per 1M events), `flywheel generate --days 1 --events-per-day {src.parts[0].events_per_day} "
              f"--seed S --start {src.start}` for S = {', '.join(str(p.seed) for p in src.parts)}; part k > 0 lands "
              f"as `events-{src.start}-pKK.jsonl.gz` and `interventions-{src.start}-pKK.csv` ({gen})")
            continue
        w(f"- {kind}: `flywheel generate --days {src.days} --events-per-day {src.events_per_day} --seed "
          f"{src.seed} --start {src.start}` ({gen})")
    w(f"- the new day is {cfg.new_day}: the day after the history, generated on its own (one-day generation, "
      "so its interventions file holds the day's own interventions only; events jsonl.gz, interventions CSV); "
      "history lines use the same new day at the history size")
    if cfg.history:
        w(f"- history stores: the last H days of the history files backfilled from empty (`flywheel run`), "
          f"H = {', '.join(map(str, cfg.history))}; each night starts from a copy of that store")
    w(f"- the night with a week of late reviews: `--from {(cfg.new_day - timedelta(days=LATE_DAYS))} --to {cfg.new_day}` "
      f"(the new day and the {LATE_DAYS} days before it; the schedule rebuilt these every night until issue 14, "
      f"now only the days whose inputs changed)"
      if cfg.schedule_window and cfg.history else "- the night with a week of late reviews: not run")
    w("- against the engine (issue 19): after the first repetition of each empty-store night, on its landing files, "
      "`bench/landing_floor.sql` (one DuckDB query over the files, best of 3; 1 at 10M) and `bench/notebook.py` (a pandas "
      f"notebook, the same counts with Wilson intervals, up to {label(PANDAS_MAX)} events), each in its own process; "
      "the history nights read the same new day's files, so they have no baselines of their own; imports per package "
      "from one `python -X importtime` child")
    for n in nights:
        if n.note:
            w(f"- **{n.name}**: {n.note}")
    w(f"- scratch folder: `{_rel(cfg.work)}`; per-run logs and JSON results in `{_rel(cfg.work / 'logs')}`, "
      f"all figures in `{_rel(cfg.work / 'results.json')}`")
    w("")

    if profile:
        w(f"## Profile: nightly of one {label(profile['events'])}-event day (empty store), cProfile")
        w("")
        w(f"One extra run under cProfile (wall {fmt_s(profile['wall'])} s with the profiler on); native time (DuckDB, "
          f"polars, pyarrow) shows as the Python call that waits for it. Full stats: `{_rel(Path(profile['prof']))}`."
          + (" In this run the landing sync read its files in the process itself (workers=1) so that the profile "
             "sees the parsing; in the measured runs it may read them in worker processes." if profile.get("serial_sync") else ""))
        steps = profile.get("steps") or []
        if steps:
            w("")
            w("Under the profiler: " + ", ".join(f"{s['step']} {fmt_s(s['seconds'])} s" for s in steps)
              + (f"; landing sync before the job {fmt_s(profile['timed_first_sync'])} s" if profile.get("timed_first_sync") else "") + ".")
        w("")
        w("Top by cumulative time:")
        w("")
        w("```")
        w(profile["texts"]["cumulative"])
        w("```")
        w("")
        w("Top by own time:")
        w("")
        w("```")
        w(profile["texts"]["tottime"])
        w("```")
        w("")
    return "\n".join(out) + "\n", {"summaries": summaries, "targets": targets}


def _ratio(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}×"


def _agreement(b: dict) -> str:
    if b.get("matches") is None:
        return "–"
    if b["matches"]:
        return "same counts"
    return f"{b['diff']:,} apart (of {b['pipeline_events']:,} stored)"


def render_baselines(nights: list[Night], summaries: dict) -> list[str]:
    """The section on flywheel against the engine: the landing-file floor, the pandas notebook, ratios."""
    rows = [n for n in nights if summaries[n.name].get("ok") and ("landing" in summaries[n.name] or "pandas" in summaries[n.name])]
    if not rows:
        return []
    out = ["## Engine floor over the landing files, and a pandas notebook: flywheel against the engine", "",
           "| run | events counted by the floor | landing floor (s, best of N; first) | floor CPU (s) | pandas notebook (s) "
           "| pandas CPU (s) | flywheel end to end (s) | flywheel CPU (s) | landing sync (s) | end to end / floor "
           "| landing sync / floor | CPU / floor CPU | pandas / floor | floor vs flywheel's counts | pandas vs flywheel's counts |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in rows:
        s = summaries[n.name]
        fl, pd_ = s.get("landing") or {}, s.get("pandas") or {}
        ratios = s.get("ratios") or {}
        if fl.get("error"):
            floor_cells = [f"FAILED: {fl['error']}", "–", "–"]
        elif fl:
            floor_cells = [f"{fl['events']:,}", f"{fl['seconds']:.2f} (N={fl['repeat']}); {fl['first']:.2f}", fmt_s(fl["cpu"])]
        else:
            floor_cells = ["–", "not run", "–"]
        if pd_.get("error"):
            pandas_cells = [f"FAILED: {pd_['error']}", "–"]
        elif pd_:
            pandas_cells = [fmt_s(pd_["seconds"]), fmt_s(pd_["cpu"])]
        else:
            pandas_cells = [f"not run (> {label(PANDAS_MAX)} events)" if n.new_events > PANDAS_MAX else "not run", "–"]
        out.append("| " + " | ".join([n.name] + floor_cells + pandas_cells + [
            fmt_s(s["wall"]), fmt_s(s["cpu"]), fmt_s(s["sync_before_job"]), _ratio(ratios.get("wall")),
            _ratio(ratios.get("sync")), _ratio(ratios.get("cpu")), _ratio(ratios.get("pandas")),
            _agreement(fl) if fl and not fl.get("error") else "–",
            _agreement(pd_) if pd_ and not pd_.get("error") else "–"]) + " |")
    out += ["",
            "The **landing floor** is `bench/landing_floor.sql`: one plain DuckDB query over the day's landing files as "
            "the generator writes them (events JSON Lines gzip, interventions CSV; JSONL, CSV and Parquet are all read), "
            "each file through DuckDB's own reader with every needed field as text, malformed lines skipped; it keeps "
            "one copy per event id, resolves each event's latest intervention with the outcome rules of "
            "`flywheel/sql/event_outcomes.sql` and counts outcomes per scenario, on a fresh in-memory connection, best "
            "of N (3; 1 at 10M) in a separate process after the nightly. It checks only what the rules need (ids, "
            "scenario, action, timestamp of the intervention), so it counts the events flywheel quarantines too: the "
            "last columns give the sum over (scenario, outcome) of the count differences from flywheel's stored "
            "`outcomes/event_outcomes` rows of the same events.",
            "The **pandas notebook** is `bench/notebook.py`: the same counts as an analyst would write them in pandas "
            "(JSON Lines parsed line by line with `json.loads`, bad lines skipped; `pd.read_csv(on_bad_lines='skip')`; "
            "the latest intervention by sort + `drop_duplicates`; `np.select` for the outcome), plus each outcome's "
            "share of the scenario's events with its 95% Wilson interval; once, in its own process, its pandas import "
            "included.",
            "*End to end / floor* is flywheel's wall end to end (spawn to done, imports included) over the floor's best "
            "time; *landing sync / floor* is the sync before the Dagster job over the same; *CPU / floor CPU* compares "
            "user + sys time (flywheel's with its workers).",
            ""]
    return out


def _instance_note(nights: list[Night], summaries: dict) -> str:
    """`dagster_instance` on an existing DAGSTER_HOME (the history nights) beside a fresh one (empty store)."""
    key = "assets.runner:dagster_instance"
    fresh = [summaries[n.name]["timed"].get(key) for n in nights if not n.history_days and summaries[n.name].get("ok")]
    kept = [summaries[n.name]["timed"].get(key) for n in nights if n.history_days and summaries[n.name].get("ok")]
    fresh, kept = [v for v in fresh if v is not None], [v for v in kept if v is not None]
    if not fresh or not kept:
        return ""
    return (f" An empty-store night starts from a fresh DAGSTER_HOME, so `dagster_instance` creates its SQLite "
            f"storage ({min(fresh):.2f}–{max(fresh):.2f} s); on the history nights' existing one it took "
            f"{min(kept):.2f}–{max(kept):.2f} s.")


def render_fixed_costs(nights: list[Night], summaries: dict, importtime: dict | None) -> list[str]:
    """Where the time of the smallest empty-store day goes: the fixed costs of a night."""
    small = [n for n in nights if not n.history_days and summaries[n.name].get("fixed")]
    if not small:
        return []
    n = min(small, key=lambda x: x.new_events)
    fixed = summaries[n.name]["fixed"]
    out = [f"## Fixed costs: where the {label(n.new_events)}-event day's {fmt_s(fixed['wall'])} s go", "",
           "| part | seconds | share |", "|---|---|---|"]
    for part, sec in fixed["parts"].items():
        out.append(f"| {part} | {sec:.2f} | {100 * sec / fixed['wall']:.0f}% |")
    out.append(f"| **wall end to end** | {fixed['wall']:.2f} | 100% |")
    out += ["", f"From the first repetition of *{n.name}*: the child's own timestamps (process spawn, interpreter up, "
            "imports done, run_days called), the timed `sync_landing` before the job, the Dagster run's start and end "
            "and its steps' start and end from the event log, and the time spent in `build_catalog` "
            f"({fixed['catalog_calls']} calls) and `gx_result` inside the steps. *Steps' own work* is the sum of the "
            "step times less those two."
            + (" Timed between the sync and the run: " + ", ".join(f"`{k}` {v:.2f} s" for k, v in fixed["before_run"].items())
               + "; the rest of that part is resolving the job and its asset selection, and starting the progress bar."
               if fixed.get("before_run") else "") + _instance_note(nights, summaries), ""]
    if importtime and importtime.get("packages"):
        top = sorted(importtime["packages"].items(), key=lambda kv: -kv[1])
        shown = top[:10]
        rest = sum(v for _, v in top[10:])
        out += [f"Imports under `python -X importtime -c 'import dagster, assets.definitions, assets.cli'` "
                f"({importtime['total']:.2f} s in all, in a separate process; per top-level package, the sum of its "
                "modules' own import times; the profiler itself adds some time): "
                + ", ".join(f"{k} {v:.2f} s" for k, v in shown) + (f", others {rest:.2f} s" if rest else "") + ".", ""]
    return out


def _load(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _by(value: float, goal: float, unit: str, higher_is_better: bool = False) -> str:
    """How far `value` is from `goal`: the margin when met, the excess and the factor when missed."""
    def amount(x: float) -> str:
        if unit == "GiB":
            return f"{x:.2f} GiB"
        if unit == "events/s":
            return f"{x:,.0f} events/s"
        if unit == "×":
            return f"{x:.1f}×"
        if unit == "%":
            return f"{x:.0f} percentage points"
        return f"{fmt_s(x)} {unit}"
    met = value >= goal if higher_is_better else value <= goal
    if met:
        return f"{amount(abs(goal - value))} to spare"
    factor = goal / value if higher_is_better and value else value / goal
    return f"by {amount(abs(value - goal))} ({factor:.1f}× {'below' if higher_is_better else 'over'} the goal)"


def evaluate_targets(cfg: Config, nights: list[Night], summaries: dict, backfills: list[Backfill]) -> list[dict]:
    """Issue 19's goals, then the earlier ones that still hold (history, outcomes stage vs the floor):
    target, measured, verdict and by how much. A goal whose night was not run is n/a; a ratio goal
    then shows the ratio at the largest one-day size run, for information."""
    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("**met**" if ok else "**missed**")

    def row(target: str, measured: str, ok: bool | None, by: str = "") -> dict:
        return {"target": target, "measured": measured, "verdict": verdict(ok), "by": by}

    empty = {n.new_events: n for n in nights if not n.history_days and n.first == n.last}
    out = []
    one_m = empty.get(1_000_000)
    s1 = summaries[one_m.name] if one_m is not None else None
    if s1 is not None and s1.get("ok"):
        out.append(row(f"one 1M-event day end to end <= {TARGETS['e2e_1m_seconds']:.0f} s wall", f"{fmt_s(s1['wall'])} s",
                       s1["wall"] <= TARGETS["e2e_1m_seconds"], _by(s1["wall"], TARGETS["e2e_1m_seconds"], "s")))
        out.append(row(f"one 1M-event day <= {TARGETS['e2e_1m_rss_gib']:.0f} GiB peak memory", f"{fmt_gib(s1['rss'])} GiB",
                       s1["rss"] <= TARGETS["e2e_1m_rss_gib"] * GiB, _by(s1["rss"] / GiB, TARGETS["e2e_1m_rss_gib"], "GiB")))
    else:
        out.append(row(f"one 1M-event day end to end <= {TARGETS['e2e_1m_seconds']:.0f} s wall, "
                       f"<= {TARGETS['e2e_1m_rss_gib']:.0f} GiB", "failed" if one_m else "not run", False if one_m else None))
    # ratio goals: at 1M, else shown at the largest one-day size below 10M for information
    ratio_night = one_m if s1 is not None and s1.get("ratios") else max(
        (n for size, n in empty.items() if size < 10_000_000 and summaries[n.name].get("ratios")),
        key=lambda n: n.new_events, default=None)
    for key, goal, what in (("wall", TARGETS["e2e_1m_floor_ratio"], "one 1M-event day end to end"),
                            ("sync", TARGETS["sync_floor_ratio"], "landing sync of the 1M-event day")):
        name = f"{what} <= {goal:.0f}× the landing floor (same run)"
        if ratio_night is None:
            out.append(row(name, "not run", None))
            continue
        rs = summaries[ratio_night.name]
        value = rs["ratios"].get(key)
        detail = (f"{_ratio(value)} ({fmt_s(rs['wall'] if key == 'wall' else rs['sync_before_job'])} s / "
                  f"{rs['landing']['seconds']:.2f} s)" if value is not None else "–")
        if ratio_night is one_m and value is not None:
            out.append(row(name, detail, value <= goal, _by(value, goal, "×")))
        else:
            out.append(row(name, f"{detail} at {label(ratio_night.new_events)} (the goal is at 1M)", None))
    full = max(backfills, key=lambda b: b.days) if backfills else None
    if full is not None:
        name = f"backfill >= {TARGETS['backfill_eps']:,.0f} events/s end to end (90 days × 100k)"
        measured = f"{full.eps:,.0f} events/s ({full.days} days × {label(full.events_per_day)}, {fmt_s(full.run.wall)} s)"
        if full.days >= 90 and full.events_per_day >= 100_000:
            out.append(row(name, measured, full.eps >= TARGETS["backfill_eps"],
                           _by(full.eps, TARGETS["backfill_eps"], "events/s", higher_is_better=True)))
        else:
            out.append(row(name, measured + " (the goal is at 90 days × 100k)", None))
    else:
        out.append(row(f"backfill >= {TARGETS['backfill_eps']:,.0f} events/s end to end (90 days × 100k)", "not run", None))
    ten_m = empty.get(10_000_000)
    name = (f"one 10M-event day <= {TARGETS['e2e_10m_seconds'] / 60:.0f} min and <= {TARGETS['rss_10m_gib']:.0f} GiB")
    if ten_m is not None:
        s = summaries[ten_m.name]
        rss = max((m.maxrss for m in ten_m.reps), default=0)
        if s.get("ok"):
            ok = s["wall"] <= TARGETS["e2e_10m_seconds"] and rss <= TARGETS["rss_10m_gib"] * GiB
            out.append(row(name, f"{fmt_s(s['wall'])} s, peak {fmt_gib(rss)} GiB", ok,
                           f"time {_by(s['wall'], TARGETS['e2e_10m_seconds'], 's')}; "
                           f"memory {_by(rss / GiB, TARGETS['rss_10m_gib'], 'GiB')}"))
        else:
            out.append(row(name, f"did not complete ({s.get('error')}), peak {fmt_gib(rss)} GiB", False))
    else:
        out.append(row(name, "not run (make bench BENCH_10M=1)", None))
    hk = empty.get(100_000)
    name = f"one 100k-event day <= {TARGETS['e2e_100k_seconds']:.0f} s end to end"
    if hk is not None and summaries[hk.name].get("ok"):
        w = summaries[hk.name]["wall"]
        out.append(row(name, f"{fmt_s(w)} s", w <= TARGETS["e2e_100k_seconds"], _by(w, TARGETS["e2e_100k_seconds"], "s")))
    else:
        out.append(row(name, "failed" if hk else "not run", False if hk else None))
    hist = {n.history_days: summaries[n.name] for n in nights
            if n.history_days and n.first == n.last and summaries[n.name].get("ok")}
    if len(hist) >= 2:
        lo, hi = min(hist), max(hist)
        change = hist[hi]["wall"] / hist[lo]["wall"] - 1
        job_change = (hist[hi]["job"] / hist[lo]["job"] - 1) if hist[hi]["job"] and hist[lo]["job"] else None
        out.append(row(f"{hi} days of history instead of {lo} moves the nightly by <= 20%",
                       f"{fmt_s(hist[lo]['wall'])} s -> {fmt_s(hist[hi]['wall'])} s ({change:+.0%}; "
                       f"Dagster job alone {job_change:+.0%})" if job_change is not None else f"{change:+.0%}",
                       change <= TARGETS["history_ratio"], _by(100 * change, 100 * TARGETS["history_ratio"], "%")))
    else:
        out.append(row("history 90 vs 7 days moves the nightly by <= 20%", "not run", None))
    ratios = [(n, summaries[n.name]) for n in nights if summaries[n.name].get("floor_ratio") is not None]
    if ratios:
        biggest = max(ratios, key=lambda x: (x[0].new_events, -x[0].history_days))
        worst = max(r[1]["floor_ratio"] for r in ratios)
        out.append(row("outcomes stage <= 5x the engine floor over the stored partitions",
                       f"{biggest[1]['floor_ratio']:.1f}× at {label(biggest[0].new_events)} ({biggest[0].name}); "
                       f"worst {worst:.1f}× over all lines", biggest[1]["floor_ratio"] <= TARGETS["floor_ratio"],
                       _by(biggest[1]["floor_ratio"], TARGETS["floor_ratio"], "×")))
    return out


# --------------------------------------------------------------------------------------------
# main

def main(argv: list[str] | None = None) -> int:
    cfg = make_config(argv)
    if cfg.render_only:
        return render_only(cfg)
    started = datetime.now(timezone.utc)
    cfg.work.mkdir(parents=True, exist_ok=True)
    runner = Runner(cfg)
    info = machine()
    print(f"bench: work folder {cfg.work}; report -> {cfg.out}", flush=True)

    # 1. sample data
    sources: dict[str, Source | None] = {}
    hist = generate(runner, cfg.history_max, cfg.history_events, cfg.seed, cfg.start) if cfg.history else None
    sources["history"] = hist
    new_days: dict[int, Source | None] = {}
    for n in sorted(set(cfg.sizes) | ({cfg.history_events} if cfg.history else set())):
        new_days[n] = generate_day(runner, n, cfg.new_day)
        sources[f"new day {label(n)}"] = new_days[n]

    # what the imports of a run cost, package by package (python -X importtime, in a child)
    imp = runner.child("imports under -X importtime", {"mode": "importtime"}, allow_failure=True)
    importtime = None if imp.result.get("error") else imp.result

    nights: list[Night] = []
    D = cfg.new_day
    # 2. one new day on an empty store
    for n in sorted(cfg.sizes):
        if new_days.get(n) is None:
            nights.append(Night(f"{label(n)} day", n, 0, 0, D.isoformat(), D.isoformat(),
                                [], None, "generation failed"))
            continue
        big = n >= 10_000_000
        nights.append(measure_night(runner, f"{label(n)} day", None, new_days[n], D, D, 0,
                                    1 if big else cfg.repeat, allow_failure=big,
                                    rss_cap=int(cfg.cap_10m_gib * GiB) if big else None))

    # 3. backfills, largest first (the full backfill), 4. the night on each history
    backfills: list[Backfill] = []
    snapshots: dict[int, Path] = {}
    for h in sorted(cfg.history, reverse=True):
        b, snap = measure_backfill(runner, hist, h)
        backfills.append(b)
        snapshots[h] = snap
    backfills.sort(key=lambda b: b.days)
    for h in sorted(cfg.history):
        nights.append(measure_night(runner, f"{label(cfg.history_events)} day after {h} d", snapshots[h],
                                    new_days[cfg.history_events], D, D, h, cfg.repeat,
                                    baselines=False))  # the same new day's files as the empty-store line
    # 5. the night as the schedule runs it
    if cfg.history and cfg.schedule_window:
        h = cfg.history_max
        nights.append(measure_night(runner, f"{label(cfg.history_events)} day after {h} d, +{LATE_DAYS} days of late reviews",
                                    snapshots[h], new_days[cfg.history_events], D - timedelta(days=LATE_DAYS), D, h, 1,
                                    baselines=False))
    # 6. the failure model on a night of 1M failing events
    failures = measure_failures(runner, cfg.failure_docs, small=cfg.quick) if cfg.failure_docs else None
    # optional profile
    profile = None
    if cfg.profile:
        biggest = max((n for n in cfg.sizes if new_days.get(n) is not None and n < 10_000_000), default=None)
        if biggest:
            profile = profile_night(runner, new_days[biggest])
    if runner.live.exists():
        shutil.rmtree(runner.live)

    finished = datetime.now(timezone.utc)
    return write_report(cfg, info, nights, backfills, sources, profile, started, finished, failures=failures,
                        importtime=importtime)


def _insert_before(text: str, heading: str, section: str) -> str:
    """`text` with `section` placed before the line `heading` (at the end when there is none)."""
    if not section:
        return text
    at = text.find("\n" + heading)
    return text + "\n" + section if at < 0 else text[:at + 1] + section + "\n" + text[at + 1:]


def measure_failures(runner: "Runner", docs: int, small: bool = False) -> dict:
    """The failure-clustering night of `docs` failing events: its figures, wall, peak RSS and CPU
    (`small`: after 3 nights of 500 events instead of 13 of 2,000)."""
    spec = {"mode": "failures", "docs": docs, "work": str(runner.cfg.work),
            "days": 4 if small else 14, "events_per_day": 500 if small else 2000}
    m = runner.child(f"failure model, {label(docs)} failing events", spec, allow_failure=True)
    return {"docs": docs, "days": spec["days"], "events_per_day": spec["events_per_day"], "wall": m.wall, "maxrss": m.maxrss, "cpu": m.cpu, "load": m.load_before,
            "error": m.result.get("error"), **(m.result.get("figures") or {})}


def render_failures(failures: dict | None) -> list[str]:
    """The report's section on the failure model at scale."""
    if not failures:
        return []
    out = [f"## Failure clusters: one night of {label(failures['docs'])} failing events", ""]
    if failures.get("error"):
        return out + [f"Failed: {failures['error']}", ""]
    return out + [
        f"`python -m flywheel.failures.benchmark scale --docs N` in a child process: {failures.get('days', 14) - 1} "
        f"normal nights of generated data ({failures.get('events_per_day', 2000):,} events a day), then a last night of N failing events (the generated ones repeated under new ids), "
        "from raw rows to written assignments: every failing event assigned, the fit on a sample.", "",
        "| failing events | wall (s) | documents (s) | model: fit + assign (s) | CPU (s) | peak RSS (GiB) | clusters after "
        "| unmatched | load |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {int(failures['failing_events']):,} | {failures['wall']:.1f} | {failures['seconds_documents']:.1f} | "
        f"{failures['seconds_model']:.1f} | {failures['cpu']:.1f} | {fmt_gib(failures['maxrss'])} | "
        f"{int(failures['clusters_after'])} | {100 * failures['unmatched_share']:.1f}% | {_load(failures.get('load'))} |",
        ""]


# The nightly bench's part of BENCHMARKS.md: the other benchmarks' sections and the hand-written
# analysis outside these markers are kept when it is written again.
START_MARK, END_MARK = "<!-- bench-nightly:start -->", "<!-- bench-nightly:end -->"


def write_nightly_section(path: Path, text: str) -> None:
    """Put the report `text` between the markers in `path`: replacing what they held, or at the top
    of a file that has none (or alone in a new file)."""
    section = f"{START_MARK}\n{text.rstrip()}\n{END_MARK}\n"
    old = path.read_text() if path.exists() else ""
    if START_MARK in old and END_MARK in old:
        head, rest = old.split(START_MARK, 1)
        path.write_text(head + section + rest.split(END_MARK, 1)[1].removeprefix("\n"))
    else:
        path.write_text(section + ("\n" + old if old else ""))


def write_report(cfg: Config, info: dict, nights: list[Night], backfills: list[Backfill], sources: dict,
                 profile: dict | None, started: datetime, finished: datetime, save: bool = True,
                 failures: dict | None = None, importtime: dict | None = None) -> int:
    text, summary = render(cfg, info, nights, backfills, sources, profile, started, finished, importtime)
    text = _insert_before(text, "## Targets", "\n".join(render_failures(failures)))
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    write_nightly_section(cfg.out, text)
    results = {"config": {k: (str(v) if isinstance(v, (Path, date)) else v) for k, v in asdict(cfg).items()},
               "machine": info, "started": started.isoformat(), "finished": finished.isoformat(),
               "nights": [_night_dict(n) for n in nights],
               "backfills": [{"days": b.days, "events_per_day": b.events_per_day, "records": b.records,
                              "events": b.events, "wall": b.run.wall, "eps": b.eps, "maxrss": b.run.maxrss,
                              "cpu": b.run.cpu, "run": _measured_dict(b.run)} for b in backfills],
               "sources": {k: _source_dict(v) for k, v in sources.items() if v is not None},
               "profile": profile, "failures": failures, "importtime": importtime,
               **summary}
    if save:
        (cfg.work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print()
    print(text)
    print(f"bench: wrote {cfg.out}")
    failed = [n.name for n in nights if not n.ok and n.new_events < 10_000_000]
    return 1 if failed else 0


def _measured_dict(m: Measured) -> dict:
    return {"name": m.name, "wall": m.wall, "process_wall": m.process_wall, "maxrss": m.maxrss, "cpu": m.cpu,
            "load": [m.load_before, m.load_after], "code": m.code, "single_maxrss": m.single_maxrss,
            "processes": m.processes, "result": m.result}


def _measured(d: dict, name: str = "") -> Measured:
    load = d.get("load") or [None, None]
    return Measured(d.get("name", name), d.get("wall", 0.0), d.get("process_wall", 0.0), d.get("maxrss", 0),
                    d.get("cpu", 0.0), d.get("result", {}), load[0], load[1], d.get("code", ""),
                    d.get("single_maxrss", d.get("maxrss", 0)), d.get("processes", 1))


def _night_dict(n: Night) -> dict:
    return {"name": n.name, "new_events": n.new_events, "history_days": n.history_days,
            "history_events": n.history_events, "first": n.first, "last": n.last, "note": n.note,
            "reps": [_measured_dict(m) for m in n.reps], "floor": _measured_dict(n.floor) if n.floor else None,
            "landing": _measured_dict(n.landing) if n.landing else None,
            "pandas": _measured_dict(n.pandas) if n.pandas else None}


def _source_dict(src: Source) -> dict:
    return {"landing": str(src.landing), "days": src.days, "events_per_day": src.events_per_day,
            "start": src.start.isoformat(), "seconds": src.seconds, "seed": src.seed, "reused": src.reused,
            "maxrss": src.maxrss, "parts": [_source_dict(p) for p in src.parts]}


def _source(d: dict) -> Source:
    return Source(Path(d["landing"]), d["days"], d["events_per_day"], date.fromisoformat(d["start"]), d.get("seconds"),
                  [], d.get("seed", 0), [_source(p) for p in d.get("parts", [])], d.get("reused", False), d.get("maxrss"))


def render_only(cfg: Config) -> int:
    """Write the report again from WORK/results.json (and the per-run results in WORK/logs)."""
    path = cfg.work / "results.json"
    if not path.exists():
        raise SystemExit(f"bench: no {path}: run the bench first")
    saved = json.loads(path.read_text())
    c = saved["config"]
    cfg = Config(sizes=c["sizes"], history=c["history"], history_events=c["history_events"], repeat=c["repeat"],
                 schedule_window=c["schedule_window"], with_10m=c["with_10m"], seed=c["seed"],
                 start=date.fromisoformat(c["start"]), work=cfg.work, out=cfg.out, profile=c["profile"],
                 quick=c["quick"], cap_10m_gib=c.get("cap_10m_gib", 16.5), command=c["command"], merge=cfg.merge)
    logs = cfg.work / "logs"
    nights = []
    for nd in saved["nights"]:
        floor = nd.get("floor")
        if floor is not None and "result" not in floor:  # older results.json: the floor's result only
            floor = {"name": nd["name"] + ": engine floor", "result": floor}
        nights.append(Night(nd["name"], nd["new_events"], nd["history_days"],
                            nd.get("history_events", cfg.history_events if nd["history_days"] else 0),
                            nd["first"], nd["last"], [_measured(r, nd["name"]) for r in nd["reps"]],
                            _measured(floor) if floor else None, nd.get("note", ""),
                            _measured(nd["landing"]) if nd.get("landing") else None,
                            _measured(nd["pandas"]) if nd.get("pandas") else None))
    backfills = []
    for bd in saved["backfills"]:
        run = bd.get("run")
        if run is None:  # older results.json: the child's result is in the logs
            found = sorted(logs.glob(f"*-backfill_{bd['days']}_days_*.result.json"))
            result = json.loads(found[-1].read_text()) if found else {"events_stored_total": bd["events"]}
            run = {"name": f"backfill {bd['days']} days", "wall": bd["wall"], "maxrss": bd["maxrss"],
                   "cpu": bd.get("cpu", 0.0), "result": result}
        backfills.append(Backfill(bd["days"], bd["events_per_day"], bd["records"], _measured(run)))
    for other in cfg.merge:
        more = json.loads(Path(other).read_text())
        when = datetime.fromisoformat(more["finished"]).strftime("%Y-%m-%d %H:%M UTC")
        for nd in more["nights"]:
            floor = nd.get("floor")
            nights.append(Night(nd["name"], nd["new_events"], nd["history_days"], nd.get("history_events", 0),
                                nd["first"], nd["last"], [_measured(r, nd["name"]) for r in nd["reps"]],
                                _measured(floor) if floor else None,
                                f"separate run, {when}: `{more['config']['command']}`",
                                _measured(nd["landing"]) if nd.get("landing") else None,
                                _measured(nd["pandas"]) if nd.get("pandas") else None))
        for k, v in (more.get("sources") or {}).items():
            saved.setdefault("sources", {}).setdefault(k, v)
    if saved.get("sources"):
        sources = {k: _source(v) for k, v in saved["sources"].items()}
    else:
        sources = {"history": cached_source(cfg, cfg.history_max, cfg.history_events, cfg.seed, cfg.start, reused=False)
                   if cfg.history else None}
        for n in sorted(set(cfg.sizes) | ({cfg.history_events} if cfg.history else set())):
            sources[f"new day {label(n)}"] = cached_source(cfg, 1, n, cfg.seed + 1, cfg.new_day, reused=False)
    profile = saved.get("profile")
    if profile is None and cfg.profile:
        profile = _profile_from_files(cfg)
    return write_report(cfg, saved["machine"], nights, backfills, sources, profile,
                        datetime.fromisoformat(saved["started"]), datetime.fromisoformat(saved["finished"]), save=False,
                        failures=saved.get("failures"), importtime=saved.get("importtime"))


def _profile_from_files(cfg: Config) -> dict | None:
    import io
    import pstats

    profs = sorted(cfg.work.glob("profile-*.prof"), key=lambda p: p.stat().st_mtime)
    runs = sorted((cfg.work / "logs").glob("*-profile_nightly_*.result.json"), key=lambda p: p.stat().st_mtime)
    if not profs or not runs:
        return None
    result = json.loads(runs[-1].read_text())
    texts = {}
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(str(profs[-1]), stream=buf).strip_dirs().sort_stats(key).print_stats(30)
        texts[key] = _trim_pstats(buf.getvalue())
    events = _int_list(profs[-1].stem.split("-", 1)[1])[0]
    return {"events": events, "wall": result["t_end"] - result["t_start"], "prof": str(profs[-1]), "texts": texts,
            "steps": result.get("steps", [])}


if __name__ == "__main__":
    sys.exit(main())
