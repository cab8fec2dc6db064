"""The `flywheel` command line.

It lives in the Dagster layer because `flywheel run` executes the same Dagster job the nightly
schedule runs, in-process, for cron users without a Dagster daemon (`assets.runner.run_days`). Runs
are recorded in the Dagster instance at $DAGSTER_HOME when it is set (so `make ui` shows them), else
in a throwaway one.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from assets.runner import run_days
from flywheel.config import Settings
from flywheel.objectstore import url


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="flywheel",
        description="Turn AI audit logs and human interventions into evidence. Paths come from "
                    "FLYWHEEL_LANDING (data/landing), FLYWHEEL_STORE (data/store), FLYWHEEL_DB (data/flywheel.duckdb).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write realistic sample logs with known truth into the landing folder",
                         description="Write D days of N events per day (plus interventions, duplicates and "
                                     "malformed records) into the landing folder, and the truth beside them "
                                     "(truth.json, truth_labels.parquet). Deterministic for a seed.")
    gen.add_argument("--days", type=_positive, default=30, help="number of days (default 30)")
    gen.add_argument("--events-per-day", type=_positive, default=2000, help="events per day (default 2000)")
    gen.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    gen.add_argument("--start", type=_day, default=None, help="first day, YYYY-MM-DD (default: DAYS before today, so the last day is yesterday)")
    gen.add_argument("--landing", type=Path, default=None, help="landing folder (default $FLYWHEEL_LANDING or data/landing)")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")

    run = sub.add_parser("run", help="run the whole nightly pipeline in-process for a range of event days",
                         description="Read new landing files and materialise every nightly asset for the event "
                                     "days FROM..TO (default: exactly the days whose inputs changed since they "
                                     "were last built, late interventions included), as the schedule does.")
    run.add_argument("--from", dest="first", type=_day, default=None, help="first event day (YYYY-MM-DD)")
    run.add_argument("--to", dest="last", type=_day, default=None, help="last event day (YYYY-MM-DD)")
    run.add_argument("--quiet", action="store_true", help="print only the summary (and the progress bar)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    summary = sub.add_parser("summary", help="print what is stored, quarantined and pending, and where")
    summary.add_argument("--json", action="store_true", help="as JSON")

    sql = sub.add_parser("sql", help="run a read-only SQL query against the database and print a table",
                         description="Runs one query on a read-only connection to FLYWHEEL_DB (writes are refused).")
    sql.add_argument("query", help="the SQL, e.g. \"SELECT * FROM outcomes.daily_rates LIMIT 5\"")
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sql.add_argument("--limit", type=_positive, default=200, help="rows to print at most (default 200)")

    st = sub.add_parser("status", help="last run, pending approvals, open alerts")
    st.add_argument("--json", action="store_true", help="as JSON")

    docs = sub.add_parser("docs", help="write documentation generated from the database")
    docs.add_argument("what", choices=("tables",), help="tables: every analyst table and column, from the comments")

    dec = sub.add_parser("decisions", help="list pending recommendations, approve or reject them",
                         description="Promotions take effect in the published feed only once a human approves them; "
                                     "every verdict is appended to the approvals ledger.")
    dsub = dec.add_subparsers(dest="decisions_command", required=True)
    dl = dsub.add_parser("list", help="pending promotions of the latest day, with their evidence")
    dl.add_argument("--all", action="store_true", help="every decision of the latest day, not only pending ones")
    dl.add_argument("--json", action="store_true", help="as JSON")
    for verb in ("approve", "reject"):
        dv = dsub.add_parser(verb, help=f"{verb} a pending promotion")
        dv.add_argument("decision_id", metavar="ID", help="the decision id from `flywheel decisions list`")
        dv.add_argument("--by", required=True, help="who decides (recorded)")
        dv.add_argument("--note", default="", help="why (recorded)")
    de = dsub.add_parser("explain", help="recompute a decision from its archived inputs and policy text",
                         description="Recompute decision ID with the policy text archived under its digest: from "
                                     "the inputs its evidence keeps (autonomy decisions), and by deciding its day "
                                     "again from the stored data; says whether each reproduces it.")
    de.add_argument("decision_id", metavar="ID", help="a decision id (from `decisions list --all`, the feed or signals.decision_log)")
    de.add_argument("--json", action="store_true", help="as JSON")

    bt = sub.add_parser("backtest", help="replay a policy over the stored history and show what would have differed",
                        description="Replays the policy in force and the policy FILE over the stored days into a "
                                    "separate output folder (never the approvals ledger, never the feed), both assuming "
                                    "every promotion is approved on its day, and prints what differs: promotions, "
                                    "demotions, gates and their coverage, review hours, and the failures that would "
                                    "have gone out unreviewed above the gate.")
    bt.add_argument("--policy", type=Path, required=True, help="the candidate policy file (YAML or JSON)")
    bt.add_argument("--from", dest="first", type=_day, default=None, help="first day (default: the first stored)")
    bt.add_argument("--to", dest="last", type=_day, default=None, help="last day (default: the last stored)")
    bt.add_argument("--out", type=Path, default=None,
                    help="output folder (default: backtest/ beside the store); replaced if it holds an earlier backtest")
    bt.add_argument("--no-approve", action="store_true", help="assume no promotion is approved (default: all are)")
    bt.add_argument("--json", action="store_true", help="print the comparison as JSON")
    bt.add_argument("--no-progress", action="store_true", help="no progress bar")

    pl = sub.add_parser("pull", help="pull AI calls and human verdicts from an observability tool into the landing folder",
                        description="Read a source's records since its high-water mark (minus the overlap window; "
                                    "annotations minus the lookback), land the new ones as contract JSON Lines under "
                                    "<landing>/events/SOURCE and <landing>/interventions/SOURCE, quarantine what cannot "
                                    "be mapped, and print fetched = landed + duplicates + quarantined. The mapping is "
                                    "the sources file's pull.SOURCE section (FLYWHEEL_SOURCES; docs/sources.md). "
                                    "Then `flywheel run` stores and computes them.")
    pl.add_argument("source", choices=("langfuse", "mlflow", "phoenix"),
                    help="langfuse: files of its public API's JSON list responses; "
                         "mlflow: an MLflow tracking server's traces and assessments; "
                         "phoenix: an Arize Phoenix server's LLM spans and span annotations")
    pl.add_argument("--from", dest="folder", type=Path, default=None,
                    help="langfuse: folder of the source's JSON files (GET /api/public/traces, "
                         "observations, scores pages; default: pull.langfuse.folder)")
    pl.add_argument("--tracking-uri", default=None,
                    help="mlflow: the tracking server (default: pull.mlflow.tracking_uri, else MLFLOW_TRACKING_URI)")
    pl.add_argument("--experiment", action="append", default=None,
                    help="mlflow: an experiment name to pull (repeatable; default: pull.mlflow.experiments)")
    pl.add_argument("--full", action="store_true", help="ignore the high-water mark (what was landed is still skipped)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `flywheel` command; returns the exit code."""
    import warnings

    # backfill_policy is marked beta in Dagster 1.13; the warning says nothing a CLI user can act on.
    warnings.filterwarnings("ignore", message=".*backfill_policy.*")
    args = build_parser().parse_args(argv)
    try:
        if args.command == "generate":
            return _generate(args)
        if args.command == "run":
            return _run(args)
        if args.command == "summary":
            return _summary(args)
        if args.command == "decisions":
            return _decisions(args)
        if args.command == "backtest":
            return _backtest(args)
        if args.command == "sql":
            return _sql(args)
        if args.command == "status":
            return _status(args)
        if args.command == "pull":
            return _pull(args)
        if args.command == "docs":
            from flywheel.analyst import tables_page

            print(tables_page(Settings.from_env()))
            return 0
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"flywheel: error: {exc}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse requires a command


def _pull(args: argparse.Namespace) -> int:
    from flywheel.sources import SourcesError
    from flywheel.sources.langfuse import LangfuseFiles
    from flywheel.sources.pull import Source, pull
    from flywheel.sources.verdicts import PullSource, pull_config

    settings = Settings.from_env()
    config: PullSource
    source: Source
    try:
        if args.source == "phoenix":
            from flywheel.sources.phoenix import PhoenixServer, phoenix_config

            config = phoenix_config()
            source = PhoenixServer(settings, config)
        elif args.source == "mlflow":
            from flywheel.sources.mlflow import MlflowServer, mlflow_config

            config = mlflow_config()
            source = MlflowServer(config, args.tracking_uri, args.experiment)
        else:
            config = pull_config(args.source)
            folder = args.folder if args.folder is not None else config.folder
            if folder is None:
                raise ValueError(f"flywheel pull {args.source} needs --from DIR (or pull.{args.source}.folder "
                                 "in the sources file)")
            source = LangfuseFiles(folder, config)
    except SourcesError as exc:
        print(f"flywheel: error: {exc}", file=sys.stderr)
        return 2
    report = pull(settings, source, config, full=args.full)
    print("\n".join(report.lines()))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from flywheel.generate import generate

    settings = Settings.from_env(landing=args.landing)
    truth = generate(settings.landing, days=args.days, events_per_day=args.events_per_day, seed=args.seed,
                     start=args.start, progress=not args.no_progress)
    counts = truth.get("counts", {})
    print(f"wrote {args.days} days from {truth.get('start')} into {settings.landing}: "
          f"{counts.get('events_valid', '?')} events, {counts.get('interventions_valid', '?')} interventions, "
          f"truth in {settings.landing / 'truth.json'}")
    return 0


def _run(args: argparse.Namespace) -> int:
    import logging

    if args.quiet:
        logging.getLogger("dagster").setLevel(logging.WARNING)
    import os

    from flywheel.signals.decide import policy_for

    settings = Settings.from_env()
    policy_for(settings)  # a bad policy stops the run here, not at the decisions step after the night's work
    if not settings.landing.is_dir():
        raise ValueError(f"landing folder {settings.landing} does not exist (FLYWHEEL_LANDING); "
                         "create it, or point FLYWHEEL_LANDING at the folder producers write to")
    if not os.environ.get("DAGSTER_HOME"):
        print("flywheel: DAGSTER_HOME is not set: this run is recorded in a throwaway Dagster instance, not in "
              "the run history the UI shows", file=sys.stderr)
    ran = run_days(settings, args.first, args.last, quiet=args.quiet, progress=not args.no_progress)
    if ran is None:
        if args.first is None and args.last is None:
            print(f"flywheel: nothing to rebuild: no landing file under {settings.landing} changed a day "
                  "since it was last built")
        else:
            print(f"flywheel: no event data in that range under {settings.landing}")
        return 0
    from flywheel.ingest.changed_days import contiguous

    ranges = ", ".join(str(a) if a == b else f"{a} .. {b}" for a, b in contiguous(ran.days))
    print(f"ran event days {ranges}")
    import duckdb

    try:
        _summary(argparse.Namespace(json=False))
    except duckdb.IOException as exc:  # the summary reads the database file; the night did not need it
        if "lock" not in str(exc).lower():
            raise
        print(f"flywheel: the run succeeded; its summary is skipped because another process holds {settings.db} "
              "read-write (open it read-only: duckdb -readonly, or read_only=True)", file=sys.stderr)
    print()
    return _decisions(argparse.Namespace(decisions_command="list", all=False, json=False))


def _decisions(args: argparse.Namespace) -> int:
    from flywheel.signals.feed import load_decisions, pending, record_verdict

    settings = Settings.from_env()
    if args.decisions_command == "explain":
        from flywheel.signals.explain import explain, format_explanation

        doc = explain(settings, args.decision_id)
        print(json.dumps(doc, indent=1, default=str) if args.json else format_explanation(doc))
        parts = [doc.get("from_archived_inputs"), doc.get("from_store")]
        return 0 if all(p["reproduces"] for p in parts if p) else 1
    if args.decisions_command in ("approve", "reject"):
        entry = record_verdict(settings, args.decision_id, "approved" if args.decisions_command == "approve" else "rejected",
                               args.by, args.note)
        print(f"{entry['verdict']}: {entry['scenario']} -> {entry['level']} (decision {entry['decision_id']}) by {entry['by']}"
              f"; the next published feed carries it")
        return 0
    frame = load_decisions(settings) if args.all else pending(settings)
    if args.json:
        print(json.dumps(frame.to_dicts(), indent=1, default=str))
        return 0
    if frame.height == 0:
        print("no decisions awaiting approval" if not args.all else "no decisions yet")
        return 0
    title = "decisions of" if args.all else "awaiting approval, decided on"
    print(f"{title} {frame['day'][0]} (policy {frame['policy_version'][0]}):")
    for r in frame.sort("kind", "scenario", "subject").iter_rows(named=True):
        ev = json.loads(r["evidence"])
        figures = ", ".join(f"{k}={_fmt(v)}" for k, v in ev.items() if not isinstance(v, (dict, list)))[:300]
        print(f"  {r['decision_id']}  {r['kind']:<14} {r['scenario']:<18} {r['subject'] if r['subject'] != r['scenario'] else '':<24}"
              f" {r['current'] or '':<10} -> {r['recommended'] or '':<16} {r['rule']}")
        print(f"      evidence: {figures}")
    if not args.all:
        print("approve with: flywheel decisions approve ID --by NAME --note TEXT (or reject)")
    return 0


def _backtest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from flywheel.signals.backtest import backtest, format_report, stored_days
    from flywheel.signals.decide import policy_for
    from flywheel.signals.policy import load_policy

    settings = Settings.from_env()
    candidate = load_policy(args.policy)
    out = args.out or settings.store.parent / "backtest" / f"{candidate.version}-{candidate.digest()}"
    days = stored_days(settings, args.first, args.last)
    with tqdm(total=2 * len(days), unit="day", desc="backtest", disable=args.no_progress or args.json) as bar:
        report = backtest(settings, policy_for(settings), candidate, out, args.first, args.last,
                          approve=not args.no_approve, progress=lambda: bar.update(1))
    print(json.dumps(report, indent=1, sort_keys=True, default=str) if args.json else format_report(report))
    return 0


def _sql(args: argparse.Namespace) -> int:
    import duckdb

    from flywheel.analyst import format_rows, run_query

    try:
        columns, rows, truncated = run_query(Settings.from_env(), args.query, args.limit)
    except duckdb.Error as exc:
        print(f"flywheel: query failed: {exc}", file=sys.stderr)
        return 2
    print(format_rows(columns, rows, args.format))
    if truncated and args.format == "table":
        print(f"(first {args.limit} rows; use --limit)")
    return 0


def _status(args: argparse.Namespace) -> int:
    from flywheel.analyst import status

    state = status(Settings.from_env())
    if args.json:
        print(json.dumps(state, indent=1, default=str))
        return 0
    run = state["last_run"]
    print(f"last event day: {state['last_event_day']}")
    print(f"last run: {run['run_id']} at {run['decided_at']} (data day {run['data_day']})" if run else "last run: none")
    print(f"pending approvals: {len(state['pending_approvals'])}")
    for p in state["pending_approvals"]:
        print(f"  {p['decision_id']}  {p['scenario']}: {p['current']} -> {p['recommended']}")
    print(f"open alerts: {len(state['open_alerts'])}")
    for a in state["open_alerts"]:
        print(f"  {a['scenario']} {a['model']}/{a['prompt_version']} {a['signal']}: {_fmt(a['baseline'])} -> {_fmt(a['current'])}")
    print(f"quarantined records: {state['quarantined_records']}")
    return 0


def _fmt(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _summary(args: argparse.Namespace) -> int:
    from flywheel.reconcile import quarantine_by_reason, totals

    settings = Settings.from_env()
    if not settings.db.exists():
        raise FileNotFoundError(f"no database at {settings.db}: run `flywheel run` first")
    t = totals(settings)
    reasons = quarantine_by_reason(settings)
    truth_path = settings.landing / "truth.json"
    truth = json.loads(truth_path.read_text()) if truth_path.exists() else None
    if args.json:
        from flywheel.outcomes.summary import scenario_summary

        print(json.dumps({"totals": t, "quarantine": reasons, "scenarios": scenario_summary(settings)},
                         indent=1, sort_keys=True, default=str))
        return 0
    from flywheel.outcomes.summary import format_summary, scenario_summary

    print("\n" + format_summary(scenario_summary(settings)))
    print(f"\nlanding files read: {t['files']}   records read: {t['records_read']}")
    print(f"stored: {t['stored']}   exact duplicates dropped: {t['duplicates']}   "
          f"quarantined: {t['quarantined']}   pending: {t['pending']}")
    print(f"files whose counts do not reconcile: {t['unbalanced_files']}")
    print("quarantined by reason:")
    for kind, by_code in reasons.items():
        print(f"  {kind}: " + ", ".join(f"{code} {n}" for code, n in by_code.items()))
    if truth and "malformed" in truth:
        expected = {k: {c: n for c, n in v.items() if n} for k, v in truth["malformed"].items()}
        same = expected == reasons
        print(f"generator's truth ({truth_path}): {'quarantine matches it exactly' if same else 'DIFFERS: ' + json.dumps(expected)}")
    print(f"\nresults: DuckDB database {settings.db} (read-only from Python: "
          f"duckdb.connect('{settings.db}', read_only=True), then "
          f"SET VARIABLE flywheel_store = '{url(settings.store)}'), Parquet store {settings.store}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
