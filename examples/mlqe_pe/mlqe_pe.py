"""MLQE-PE's machine translations and their professional post-edits as AI audit events and human
edits, run through the whole nightly pipeline (`flywheel run`), with the figures its README shows.

    python examples/mlqe_pe/mlqe_pe.py --data ../shared/data/mlqe-pe --work /tmp/mlqe

`convert` turns `mlqe_pe_{ende,enzh}_train.tsv` (one row per Wikipedia sentence; see ABOUT.md beside
the data) into the landing contracts: one event per row, scenario `translation_<pair>`, model
`mlqe-pe-<pair>` (one Transformer per pair), input = the English source, output = `mt`, confidence =
exp(`model_logprob`) (the model's mean token probability), status ok, autonomy `assist`; one
intervention per event: `accepted` when `post_edit` equals `mt` after whitespace normalisation
(runs of whitespace as one space, ends stripped), else `edited` with `final_text` = `post_edit`.
flywheel classes an edit heavy or light itself (normalised character Levenshtein distance at or
above FLYWHEEL_HEAVY_EDIT_THRESHOLD, 0.3): heavy edits are the failing events the failure model
clusters. There are no comments or reason codes. The data has no timestamps: each language pair's
rows are put in the order of a hash of (pair, segment), a fixed shuffle, and cut into days of
`rows_per_day` rows from START (the row at position i of its day runs at 00:00 + i * 72000 /
rows_per_day seconds, so every event runs before 20:00), and its review comes an hour later, the
same day. The shuffle makes the days samples of one population, so that the data has no change in
it: the files' own order is not random (en-zh's first 1,000 rows are easier than the rest), and
`shuffle=False` keeps it.

`run` is `flywheel run --from <first day> --to <last day>` in a child process with the landing
folder, store, database and published feed under the work folder. `outcome_rates`, `unmatched`,
`clusters`, `growth_warnings` and `top_substitutions` read back what the README shows from the
analysts' database; `homogeneity` tests the days for change with the last night's model held fixed.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/: what the examples share
from landing_files import stable_id, stamp, write_landing  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
START = date(2026, 2, 2)
ROWS_PER_DAY = 1000
FAILING = ("rejected", "escalated", "reverted")
GROWTH_SIGNAL = "failure_cluster_growth"


def read_tsv(path: Path) -> pl.DataFrame:
    """One MLQE-PE file (tab-separated, no quoting; `mlqe_pe_<pair>_train.tsv`) with a `pair` column."""
    frame = pl.read_csv(path, separator="\t", quote_char=None, infer_schema=False)
    pair = path.stem.split("_")[2]
    return frame.with_columns(pl.lit(pair).alias("pair")).select(
        "pair", pl.col("segment").cast(pl.Int64), "source", "mt", "post_edit",
        pl.col("hter").cast(pl.Float64), pl.col("model_logprob").cast(pl.Float64), pl.col("da_mean").cast(pl.Float64))


def write_sample(path: Path, folder: Path, rows: int) -> pl.DataFrame:
    """Copy `rows` rows of one MLQE-PE file, unmodified, into a file of the same name in `folder`:
    the rows whose blake2b digest of (pair, segment) is smallest, in file order (a deterministic
    spread over the whole file); returns them."""
    frame = pl.read_csv(path, separator="\t", quote_char=None, infer_schema=False)
    pair = path.stem.split("_")[2]
    keys = [stable_id(pair, segment) for segment in frame["segment"].to_list()]
    chosen = frame.with_columns(pl.Series("key", keys)).with_row_index("row") \
        .sort("key").head(rows).sort("row").drop("row", "key")
    folder.mkdir(parents=True, exist_ok=True)
    chosen.write_csv(folder / path.name, separator="\t", quote_style="never")
    return chosen


def normalise(text: str) -> str:
    """`text` with each run of whitespace as one space and no whitespace at either end."""
    return " ".join(text.split())


def shuffled(rows: pl.DataFrame) -> pl.DataFrame:
    """`rows` in the order of the blake2b digest of (pair, segment): a fixed shuffle."""
    keys = [stable_id(p, str(s)) for p, s in zip(rows["pair"].to_list(), rows["segment"].to_list())]
    return rows.with_columns(pl.Series("_key", keys)).sort("_key").drop("_key")


def events_and_reviews(rows: pl.DataFrame, rows_per_day: int = ROWS_PER_DAY, start: date = START,
                       shuffle: bool = True) -> tuple[list[dict], list[dict]]:
    """The events and interventions of MLQE-PE rows (see the module docstring), each pair cut into
    days of `rows_per_day` rows, in `shuffled` order (or, without `shuffle`, in the order given)."""
    events, interventions = [], []
    step = 72000 / rows_per_day
    for (pair,), part in rows.group_by("pair", maintain_order=True):
        for i, r in enumerate((shuffled(part) if shuffle else part).iter_rows(named=True)):
            day, slot = divmod(i, rows_per_day)
            at = datetime.combine(start + timedelta(days=day), datetime.min.time(), timezone.utc) \
                + timedelta(seconds=int(slot * step))
            event_id = "mlqe_" + stable_id(pair, str(r["segment"]))
            events.append({"event_id": event_id, "occurred_at": stamp(at), "scenario": f"translation_{pair}",
                           "model": f"mlqe-pe-{pair}", "prompt_version": "wiki", "autonomy_level": "assist",
                           "input_text": r["source"], "output_text": r["mt"],
                           "confidence": round(math.exp(r["model_logprob"]), 6), "status": "ok",
                           "attributes": {"segment": r["segment"]}})
            review = {"intervention_id": "iv_" + event_id[5:], "event_id": event_id,
                      "occurred_at": stamp(at + timedelta(hours=1)), "reviewer_id": f"translator_{pair}"}
            if normalise(r["post_edit"]) == normalise(r["mt"]):
                review["action"] = "accepted"
            else:
                review["action"] = "edited"
                review["final_text"] = r["post_edit"]
            interventions.append(review)
    return events, interventions


def convert(paths: list[Path], landing: Path, rows_per_day: int = ROWS_PER_DAY, start: date = START,
            shuffle: bool = True) -> list[date]:
    """Write the events and interventions of the MLQE-PE files into `landing` (JSON Lines, one file
    per pair and kind); returns the days they cover, ascending."""
    days: set[date] = set()
    for path in paths:
        rows = read_tsv(path)
        pair = rows["pair"][0]
        events, interventions = events_and_reviews(rows, rows_per_day, start, shuffle)
        days |= {date.fromisoformat(e["occurred_at"][:10]) for e in events}
        for kind, records in (("events", events), ("interventions", interventions)):
            write_landing(landing, kind, f"mlqe-pe-{pair}-{kind}", records)
    return sorted(days)


def environment(work: Path) -> dict[str, str]:
    """The environment of a `flywheel` command on the work folder (landing, store, database, feed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_") and k != "DAGSTER_HOME"}
    env.update({"FLYWHEEL_LANDING": str(work / "landing"), "FLYWHEEL_STORE": str(work / "store"),
                "FLYWHEEL_DB": str(work / "flywheel.duckdb"), "FLYWHEEL_PUBLISH": str(work / "publish"),
                "FLYWHEEL_POLICY": str(ROOT / "policy" / "policy.yaml")})
    return env


def run(work: Path, first: date, last: date) -> subprocess.CompletedProcess:
    """`flywheel run --from first --to last --quiet --no-progress` on the work folder, in a child
    process; raises RuntimeError with the end of its output when it fails."""
    command = [sys.executable, "-c", "import sys; from assets.cli import main; sys.exit(main())",
               "run", "--from", first.isoformat(), "--to", last.isoformat(), "--quiet", "--no-progress"]
    done = subprocess.run(command, cwd=ROOT, env=environment(work), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"flywheel run failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done


def connect(work: Path) -> duckdb.DuckDBPyConnection:
    """The work folder's analysts' database, read-only (the views `flywheel run` built), its views
    pointed at the work folder's store."""
    con = duckdb.connect(str(work / "flywheel.duckdb"), read_only=True)
    con.execute("SET VARIABLE flywheel_store = ?", [str(work / "store")])
    return con


def outcome_rates(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per scenario and day: events, accepted as-is, light and heavy edits, and the failing share."""
    return con.sql("""
        SELECT scenario, event_date, count(*) AS events,
               avg((outcome = 'accepted')::INT) AS accepted,
               avg((outcome = 'edited' AND edit_class = 'light')::INT) AS edited_light,
               avg((outcome = 'edited' AND edit_class = 'heavy')::INT) AS edited_heavy,
               count(*) FILTER (outcome IN ('rejected', 'escalated', 'reverted')
                                OR (outcome = 'edited' AND edit_class = 'heavy')) AS failing
        FROM outcomes.event_outcomes GROUP BY ALL ORDER BY ALL""").pl()


def clusters(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The clusters known after the last night, largest first: id, name, size, the events per
    scenario, and the first exemplar's summary."""
    return con.sql("""
        WITH per AS (SELECT cluster_id, scenario, count(*) AS n FROM failures.assignments
                     WHERE cluster_id IS NOT NULL GROUP BY ALL)
        SELECT c.cluster_id, c.label, c.size_total,
               string_agg(replace(p.scenario, 'translation_', '') || ' ' || p.n, ', ' ORDER BY p.scenario) AS by_pair,
               c.exemplars[1].summary AS exemplar
        FROM failures.clusters c LEFT JOIN per p USING (cluster_id)
        GROUP BY ALL ORDER BY c.size_total DESC, c.cluster_id""").pl()


def unmatched(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per scenario: failing events, those in no cluster, and their share."""
    return con.sql("""
        SELECT scenario, count(*) AS failing, count(*) FILTER (cluster_id IS NULL) AS unmatched,
               avg((cluster_id IS NULL)::INT) AS unmatched_share
        FROM failures.assignments GROUP BY ALL ORDER BY ALL""").pl()


def growth_warnings(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per scenario and day: the failure-cluster growth signal (clusters flagged new or growing)
    and its severity; a warning is severity `warn`."""
    return con.sql("""
        SELECT scenario, day AS event_date, statistic::INT AS clusters_flagged, severity
        FROM signals.drift WHERE signal = ? ORDER BY ALL""", params=[GROWTH_SIGNAL]).pl()


def top_substitutions(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The 10 most frequent substitutions per scenario over the last 7 days, from
    `failures.edit_patterns` (`top_substitutions.sql` beside this file: docs/cookbook.md's query)."""
    return con.sql((Path(__file__).parent / "top_substitutions.sql").read_text()).pl()


def homogeneity(work: Path) -> pl.DataFrame:
    """Is there change in the data, apart from the model's nightly refits? Every day's failing
    events assigned to the nearest cluster of the last night's model, held fixed; per scenario,
    the chi-square test of homogeneity of the day x cluster counts (clusters with at least 5
    events), over every day and over the days after the first: chi-square per degree of freedom
    (about 1 when the days are samples of one population) and p."""
    import numpy as np
    from scipy.stats import chi2_contingency

    from flywheel.config import Settings
    from flywheel.failures.documents import day_documents
    from flywheel.failures.store import load_snapshot, snapshot_days
    from flywheel.store import Layout

    settings = Settings(landing=work / "landing", store=work / "store", db=work / "flywheel.duckdb")
    layout = Layout(settings.store)
    days = snapshot_days(layout)
    state = load_snapshot(layout, days[-1]).state
    centroids, ids = state.centroids(), np.array(state.ids())
    parts = []
    for day in days:
        docs = day_documents(settings, day)
        nearest = (state.featurizer.transform(docs) @ centroids.T).toarray().argmax(axis=1)
        parts.append(pl.DataFrame({"scenario": docs["scenario"], "day": [day] * docs.height, "cluster": ids[nearest]}))
    assigned = pl.concat(parts)
    rows = []
    for (scenario,), part in assigned.group_by("scenario", maintain_order=True):
        table = part.group_by("day", "cluster").len().pivot(on="cluster", index="day", values="len").fill_null(0).sort("day")
        for which, sub in (("all days", table), ("after the first", table.filter(pl.col("day") > days[0]))):
            counts = sub.drop("day").to_numpy()
            counts = counts[:, counts.sum(axis=0) >= 5]
            chi2, p, dof, _ = chi2_contingency(counts)
            rows.append({"scenario": scenario, "days": which, "clusters": counts.shape[1],
                         "chi2_per_dof": chi2 / dof, "p_value": p})
    return pl.DataFrame(rows).sort("scenario", "days")


def name_coverage(work: Path, terms: int = 3) -> pl.DataFrame:
    """How much of each cluster its name describes: per cluster (after the last night), scenario
    and each of its first `terms` distinctive terms (the name is made from them), the share of the
    cluster's events in the scenario whose own edit (`edit_text` of their failure document) has
    that term."""
    from flywheel.config import Settings
    from flywheel.failures.documents import day_documents
    from flywheel.failures.store import snapshot_days
    from flywheel.store import Layout

    settings = Settings(landing=work / "landing", store=work / "store", db=work / "flywheel.duckdb")
    docs = pl.concat([day_documents(settings, day).select("event_id", "edit_text")
                      for day in snapshot_days(Layout(settings.store))])
    con = connect(work)
    try:
        assigned = con.sql("SELECT event_id, scenario, cluster_id FROM failures.assignments").pl()
        named = con.sql("SELECT cluster_id, label, terms FROM failures.clusters").pl()
    finally:
        con.close()
    events = assigned.join(docs, on="event_id").join(named, on="cluster_id").with_columns(
        pl.col("edit_text").str.split(" ").alias("tokens"))
    rows = []
    for (cluster_id, scenario), part in events.group_by("cluster_id", "scenario", maintain_order=True):
        for rank, term in enumerate(part["terms"][0][:terms], start=1):
            rows.append({"cluster_id": cluster_id, "scenario": scenario, "events": part.height, "rank": rank,
                         "term": term, "share_with_term": float(part["tokens"].list.contains(term).mean())})
    return pl.DataFrame(rows).sort("cluster_id", "scenario", "rank")


def main(argv: list[str] | None = None) -> int:
    """Command line: convert the shared data, run the pipeline, print the README's figures."""
    parser = argparse.ArgumentParser(prog="examples/mlqe_pe/mlqe_pe.py")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/mlqe-pe")
    parser.add_argument("--work", type=Path, required=True, help="folder for the landing files, store and database")
    parser.add_argument("--rows-per-day", type=int, default=ROWS_PER_DAY)
    parser.add_argument("--file-order", action="store_true", help="cut the days in file order, not shuffled")
    parser.add_argument("--homogeneity", action="store_true",
                        help="also test the days for change with the last night's model held fixed")
    parser.add_argument("--name-coverage", action="store_true",
                        help="also print how many of each cluster's events have the terms of its name")
    parser.add_argument("--write-sample", type=Path, default=None, metavar="FOLDER",
                        help="only copy --sample-rows rows of each file into FOLDER (the test fixture) and stop")
    parser.add_argument("--sample-rows", type=int, default=150)
    args = parser.parse_args(argv)
    paths = sorted(args.data.glob("mlqe_pe_*_train.tsv"))
    if not paths:
        print(f"no mlqe_pe_*_train.tsv under {args.data}", file=sys.stderr)
        return 1
    if args.write_sample is not None:
        for path in paths:
            write_sample(path, args.write_sample, args.sample_rows)
        return 0
    days = convert(paths, args.work / "landing", args.rows_per_day, shuffle=not args.file_order)
    run(args.work, days[0], days[-1])
    con = connect(args.work)
    try:
        with pl.Config(tbl_rows=100, tbl_cols=12, tbl_width_chars=200, fmt_str_lengths=90):
            print(outcome_rates(con))
            print(unmatched(con))
            named = clusters(con)
            print(named)
            print(f"clusters: {named.height}, named '(no words)': {(named['label'] == '(no words)').sum()}, "
                  f"distinct names: {named['label'].n_unique()}")
            warnings = growth_warnings(con)
            print(warnings)
            print(f"growth warnings: {(warnings['severity'] == 'warn').sum()} of {warnings.height} scenario-days")
            print(top_substitutions(con))
            if args.homogeneity:
                print(homogeneity(args.work))
            if args.name_coverage:
                print(name_coverage(args.work))
    finally:
        con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
