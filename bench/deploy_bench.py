"""Benchmark the deployment on object storage and several workers (docs/deploy.md), printing tables
that BENCHMARKS.md can take, with the command that made them.

    python -m bench.deploy_bench          # = make bench-deploy: (a) the 1M-event day, (b) 7 days x 100k
    python -m bench.deploy_bench --day-events 50000 --days 2 --backfill-events 10000   # a small check

(a) One day of --day-events events, on the object store vs the local folder. The day's landing files
    are generated once (cached in --work); each store starts empty. Two fresh processes each time:
    the landing sync alone (`flywheel.ingest.sync.sync_landing`), then `flywheel run --from D --to D`
    (the nightly job in-process; its own sync finds nothing new). Wall time from spawn to exit, CPU
    time (user+sys) of the process and everything it waited for; on the object store also the CPU
    time the S3 server (`weed server`, SeaweedFS on 127.0.0.1, started here) spent meanwhile. The
    landing files reach the bucket before the clock starts (a producer puts them there).
(b) --days days x --backfill-events events backfilled on the object store by one celery worker,
    then by two (each a fresh bucket and a fresh Dagster instance on PostgreSQL, Redis as the
    broker: the servers of tests/servers.py): one run over the range, as docs/deploy.md asks for
    backfills (`dagster job execute -m deploy.definitions -a defs -j nightly --tags <range>`). Wall
    time of the run, the steps each worker ran, and from the run's event log every step's time:
    their sum (the work one worker does in series) and the longest step (what no number of workers
    can beat: a step runs on one worker).

Both print the load average before and after: on a shared machine, read the wall times with it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
START = date(2026, 3, 1)
HASH_KEY = "deploy-bench"

sys.path.insert(0, str(REPO / "tests"))  # the servers the deployment tests start (tests/servers.py)


@dataclass
class Timed:
    wall: float
    cpu: float  # user+sys of the process and its waited-for children
    server_cpu: float | None = None  # user+sys of the S3 server meanwhile


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_", "DAGSTER_", "AWS_"))}
    env["PYTHONPATH"] = str(REPO)
    return env


def _proc_cpu(pid: int) -> float:
    """user+sys seconds of a live process (and its reaped children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks  # utime stime cutime cstime


def timed(cmd: list[str], env: dict[str, str], cwd: Path, server_pid: int | None = None) -> Timed:
    """Run `cmd` to the end (it must succeed) and measure it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = _proc_cpu(server_pid) if server_pid else None
    t0 = time.perf_counter()
    run = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if run.returncode != 0:
        raise SystemExit(f"deploy_bench: {' '.join(cmd[:4])} ... failed ({run.returncode}):\n{run.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    server = _proc_cpu(server_pid) - server_before if server_pid and server_before is not None else None
    return Timed(wall, cpu, server)


def landing(work: Path, days: int, events: int, seed: int) -> Path:
    """The landing files of `days` days x `events` events from START, generated once per size."""
    folder = work / f"landing-{days}x{events}-s{seed}"
    if not (folder / ".done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        from flywheel.generate import generate

        generate(folder, days=days, events_per_day=events, seed=seed, start=START, progress=False)
        (folder / ".done").write_text("")
    return folder


SYNC = "from flywheel.config import Settings; from flywheel.ingest.sync import sync_landing; sync_landing(Settings.from_env())"


def one_day(work: Path, s3, files: Path, events: int) -> dict[str, tuple[Timed, Timed]]:
    """(a): the sync, then the nightly job, of the one day into an empty local folder and an empty bucket."""
    day = START.isoformat()
    results = {}
    for kind in ("local", "object store"):
        base = work / f"day-{kind.replace(' ', '-')}"
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        env = _clean_env()
        env.update(FLYWHEEL_DB=str(base / "flywheel.duckdb"), FLYWHEEL_HASH_KEY=HASH_KEY)
        pid = None
        if kind == "local":
            env.update(FLYWHEEL_LANDING=str(files), FLYWHEEL_STORE=str(base / "store"),
                       FLYWHEEL_PUBLISH=str(base / "publish"))
        else:
            bucket = s3.make_bucket(f"bench-day-{events}-{int(time.time())}")
            s3.upload(files, f"{bucket}/landing")
            env.update(s3.env())
            env.update(FLYWHEEL_LANDING=f"{bucket}/landing", FLYWHEEL_STORE=f"{bucket}/store",
                       FLYWHEEL_PUBLISH=f"{bucket}/publish")
            pid = s3.pid
        sync = timed([str(BIN / "python"), "-c", SYNC], env, base, pid)
        job = timed([str(BIN / "flywheel"), "run", "--quiet", "--no-progress", "--from", day, "--to", day], env, base, pid)
        results[kind] = (sync, job)
        print(f"deploy_bench: {events:,}-event day, {kind}: sync {sync.wall:.1f} s, job {job.wall:.1f} s", flush=True)
    return results


@dataclass
class Backfill:
    workers: int
    wall: float
    steps: list[int]  # steps each worker ran
    step_sum: float
    longest: tuple[str, float]
    took: dict[str, float]  # every step's time
    critical: tuple[list[str], float]  # the chain of steps no number of workers can shorten, and its time


def _upstream() -> dict[str, set[str]]:
    """The nightly job's steps and, for each, the steps whose outputs it waits for."""
    from assets.definitions import defs

    graph = defs.resolve_job_def("nightly").graph
    deps = graph.dependency_structure
    return {node.name: {out.node.name for outs in deps.input_to_upstream_outputs_for_node(node.name).values()
                        for out in outs} for node in graph.nodes}


def critical_path(took: dict[str, float], upstream: dict[str, set[str]]) -> tuple[list[str], float]:
    """The longest chain of dependent steps, weighted by their times: however many workers run the
    job, it takes at least that long (a step runs on one worker, after the steps it reads)."""
    best: dict[str, tuple[float, list[str]]] = {}

    def longest(step: str) -> tuple[float, list[str]]:
        if step not in best:
            before = max((longest(u) for u in upstream.get(step, ())), default=(0.0, []))
            best[step] = (before[0] + took.get(step, 0.0), [*before[1], step])
        return best[step]

    total, chain = max(longest(step) for step in upstream)
    return chain, total


def _step_times(postgres, db: str) -> dict[str, float]:
    """Every step's time in the run recorded in database `db`: STEP_START to STEP_SUCCESS."""
    con = postgres.connect(db)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT step_key, dagster_event_type, timestamp FROM event_logs "
                        "WHERE dagster_event_type IN ('STEP_START', 'STEP_SUCCESS') ORDER BY id")
            start: dict[str, object] = {}
            took: dict[str, float] = {}
            for step, kind, at in cur.fetchall():
                if kind == "STEP_START":
                    start[step] = at
                elif step in start:
                    took[step] = (at - start[step]).total_seconds()
            return took
    finally:
        con.close()


def backfill(work: Path, servers, postgres, redis, s3, files: Path, days: int, events: int, workers: int,
             broker_db: int) -> Backfill:
    """(b): the days backfilled in one run through `workers` celery workers, store and landing in a bucket."""
    import yaml

    name = f"bench_{days}x{events}_w{workers}"
    base = work / name
    shutil.rmtree(base, ignore_errors=True)
    home = base / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump({
        "storage": {"postgres": {"postgres_db": postgres.create_database(name)}}, "telemetry": {"enabled": False}}))
    bucket = s3.make_bucket(f"bench-{days}x{events}-w{workers}-{int(time.time())}")
    s3.upload(files, f"{bucket}/landing")
    env = _clean_env()
    env.update(s3.env())
    env.update(DAGSTER_HOME=str(home), FLYWHEEL_LANDING=f"{bucket}/landing", FLYWHEEL_STORE=f"{bucket}/store",
               FLYWHEEL_PUBLISH=f"{bucket}/publish", FLYWHEEL_DB=str(base / "flywheel.duckdb"),
               FLYWHEEL_HASH_KEY=HASH_KEY, FLYWHEEL_CELERY_BROKER=redis.url(broker_db))
    tags = {"dagster/asset_partition_range_start": START.isoformat(),
            "dagster/asset_partition_range_end": (START + timedelta(days=days - 1)).isoformat()}
    names = [f"w{i + 1}" for i in range(workers)]
    with servers.celery_workers(names, REPO / "deploy" / "celery.yaml", env, base,
                                private=lambda folder: {"FLYWHEEL_DB": str(folder / "flywheel.duckdb")}) as procs:
        t0 = time.perf_counter()
        run = subprocess.run([str(BIN / "dagster"), "job", "execute", "-m", "deploy.definitions", "-a", "defs",
                              "-j", "nightly", "--tags", json.dumps(tags)], cwd=base, env=env,
                             capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if run.returncode != 0:
            raise SystemExit(f"deploy_bench: the backfill with {workers} worker(s) failed:\n{run.stdout[-3000:]}")
        steps = [len(re.findall(r"Task execute_plan\[[^\]]+\] succeeded", w.log.read_text(errors="replace")))
                 for w in procs]
    took = _step_times(postgres, name)
    longest = max(took.items(), key=lambda kv: kv[1])
    print(f"deploy_bench: {days} days x {events:,} events, {workers} worker(s): {wall:.1f} s", flush=True)
    return Backfill(workers, wall, steps, sum(took.values()), longest, took, critical_path(took, _upstream()))


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def render(command: str, load: tuple[str, str], day: dict | None, day_events: int,
           fills: list[Backfill], days: int, backfill_events: int) -> str:
    lines = [f"Command: `{command}` (2-core machine; load average 1/5/15 min {load[0]} before, {load[1]} after).", ""]
    if day:
        lines += [f"One day of {day_events:,} events into an empty store (wall s / CPU s, user+sys):", "",
                  "| store | landing sync | nightly job | both | S3 server CPU (sync + job) |",
                  "|---|---|---|---|---|"]
        for kind, (sync, job) in day.items():
            server = "" if sync.server_cpu is None else f"{sync.server_cpu + (job.server_cpu or 0):.1f} s"
            lines.append(f"| {kind} | {sync.wall:.1f} / {sync.cpu:.1f} | {job.wall:.1f} / {job.cpu:.1f} | "
                         f"{sync.wall + job.wall:.1f} / {sync.cpu + job.cpu:.1f} | {server} |")
        lines.append("")
    if fills:
        one = next((f.wall for f in fills if f.workers == 1), None)
        lines += [f"{days} days x {backfill_events:,} events backfilled on the object store in one run "
                  "(celery workers, instance on PostgreSQL):", "",
                  "| workers | wall s | speed-up | steps per worker | sum of step times s | longest step s |",
                  "|---|---|---|---|---|---|"]
        for f in fills:
            speed = f"{one / f.wall:.2f}x" if one else ""
            lines.append(f"| {f.workers} | {f.wall:.1f} | {speed} | {' / '.join(map(str, f.steps))} | "
                         f"{f.step_sum:.1f} | {f.longest[1]:.1f} ({f.longest[0]}) |")
        lines += ["", "Each step's time (s) in those runs, and the critical path: the chain of dependent steps that "
                  "no number of workers shortens (sum of step times / critical path = the most any number of "
                  "workers can gain on this job):", "",
                  "| step | " + " | ".join(f"{f.workers} worker(s)" for f in fills) + " |",
                  "|---|" + "---|" * len(fills)]
        for step in sorted(fills[0].took, key=lambda k: -fills[0].took[k]):
            lines.append(f"| {step} | " + " | ".join(f"{f.took.get(step, 0):.1f}" for f in fills) + " |")
        lines.append("")
        for f in fills:
            chain, total = f.critical
            lines.append(f"- {f.workers} worker(s): critical path {total:.1f} s ({' -> '.join(chain)}); "
                         f"sum of steps / critical path = {f.step_sum / total:.2f}x")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--day-events", type=int, default=1_000_000, help="events of the one day of (a); 0 skips (a)")
    parser.add_argument("--days", type=int, default=7, help="days of the backfill of (b); 0 skips (b)")
    parser.add_argument("--backfill-events", type=int, default=100_000, help="events a day of the backfill of (b)")
    parser.add_argument("--workers", default="1,2", help="worker counts of (b), comma-separated")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=REPO / "bench" / ".work" / "deploy")
    args = parser.parse_args(argv)
    command = " ".join(["python -m bench.deploy_bench", *(argv if argv is not None else sys.argv[1:])])
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    import servers

    load_before = _load()
    day, fills = None, []
    try:
        with ExitStack() as stack:
            shutil.rmtree(work / "seaweedfs", ignore_errors=True)  # a fresh server: no bucket of an earlier call
            (work / "seaweedfs").mkdir()
            s3 = stack.enter_context(servers.seaweedfs_at(work / "seaweedfs"))
            if args.day_events:
                day = one_day(work, s3, landing(work, 1, args.day_events, args.seed), args.day_events)
            if args.days:
                postgres = stack.enter_context(servers.postgres())
                (work / "redis").mkdir(exist_ok=True)
                redis = stack.enter_context(servers.redis_at(work / "redis"))
                files = landing(work, args.days, args.backfill_events, args.seed)
                for i, n in enumerate(int(x) for x in args.workers.split(",")):
                    fills.append(backfill(work, servers, postgres, redis, s3, files, args.days, args.backfill_events,
                                          n, broker_db=i))
    except BaseException as e:  # tests/servers.py skips (pytest's Skipped) when a server cannot start
        if type(e).__name__ in ("Skipped", "Failed"):
            raise SystemExit(f"deploy_bench: {e}") from None
        raise
    report = render(command, (load_before, _load()), day, args.day_events, fills, args.days, args.backfill_events)
    (work / "deploy_bench.md").write_text(report)
    print()
    print(report)
    if (args.day_events, args.days, args.backfill_events, args.workers) == (1_000_000, 7, 100_000, "1,2"):
        from bench.decisions import write_section

        write_section(REPO / "BENCHMARKS.md", section(report), START_MARK, END_MARK)
        print("deploy_bench: the section of BENCHMARKS.md is written")
    return 0


START_MARK, END_MARK = "<!-- bench-deploy:start -->", "<!-- bench-deploy:end -->"


def section(report: str) -> str:
    """BENCHMARKS.md's section of this benchmark (the full sizes only: a smaller check stays in --work)."""
    from bench.run import machine

    commit = machine().get("git", {}).get("commit", "?")
    return "\n".join([START_MARK, "## Deployment: object store and several workers (`make bench-deploy`)", "",
                      f"Code {commit}; docs/deploy.md says what runs where.", "", report.rstrip("\n"), END_MARK]) + "\n"


if __name__ == "__main__":
    sys.exit(main())
