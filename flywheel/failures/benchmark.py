"""Measure the failure model on generated data: the chosen fit against the alternatives, and a big night.

    python -m flywheel.failures.benchmark compare --days 14 --events-per-day 2000 --seed 9
    python -m flywheel.failures.benchmark scale --docs 1000000
    python -m flywheel.failures.benchmark reruns --days 14 --events-per-day 2000 --seed 9
    python -m flywheel.failures.benchmark real --data ../shared/data/mlqe-pe

`compare` generates sample data (`flywheel.generate`), ingests it and resolves its outcomes in a
temporary store, builds each night's failure documents, then runs the whole nightly process (one
`model.advance` per night, in memory) once per fit method and prints, over every failing event
whose injected failure mode is known, the NMI and ARI of the clusters against the modes (an
unmatched event counts as its own cluster), the clusters made, the night the emerging failure mode
got its own cluster (relative to its first day), the distinct non-empty cluster names (equal
to the clusters when every cluster is named and no two share a name), and the time. `scale`
runs every night but the last, then a last night of `--docs` failing events made by repeating the generated ones under new
ids, from raw rows to written assignments, and prints its time and the process's peak memory.
`real` runs the nightly process on real post-edited machine translation (MLQE-PE, `--data`: the
heavy edits of each language pair, days of 1,000 rows; no comments, no reason codes, so the
clusters and their names come from the edits alone) and prints per pair the failing events and
the share unmatched, and every cluster's events and name.
`reruns` builds every night in order in the store (`tables.build_failures`), then rebuilds every
night again, and separately builds the second half of the nights before the first half followed
by `tables.refresh_stale`; it prints, for each, the failing events whose cluster id differs from
the clean build, whether each failure table equals the clean build's (the columns naming the run
aside) and the CPU seconds.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from flywheel.config import Settings
from flywheel.failures.documents import documents, failing_events
from flywheel.failures.fit import METHODS, FitParams
from flywheel.failures.model import FailureConfig, ModelState, advance
from flywheel.tables import ASSIGNMENTS, CLUSTER_DAILY, CLUSTER_HISTORY, CLUSTERS

START = date(2026, 3, 1)


def sample_store(root: Path, days: int, events_per_day: int, seed: int) -> tuple[Settings, dict, list[date]]:
    """Generate sample data under `root`, ingest it and resolve its outcomes; returns the settings,
    the truth and the event days. Only what the failure model starts from is built, with the
    library's own steps (the stored events and interventions, each event's outcome), day by day:
    this measures the model, not the pipeline (that runs through `assets.runner.run_days`)."""
    from flywheel.generate import generate
    from flywheel.ingest.partition import build_events, build_interventions
    from flywheel.ingest.sync import sync_landing
    from flywheel.outcomes.resolve import build_event_outcomes

    settings = Settings(landing=root / "landing", store=root / "store", db=root / "flywheel.duckdb")
    truth = generate(settings.landing, days=days, events_per_day=events_per_day, seed=seed, start=START, progress=False)
    event_days = sorted(sync_landing(settings).event_days)
    for day in event_days:
        build_events(settings, day)
        build_interventions(settings, day)
        build_event_outcomes(settings, day)
    return settings, truth, event_days


def labelled_raw(settings: Settings, event_days: list[date]) -> pl.DataFrame:
    """The raw failing events of every day, with the injected failure mode (`failure_mode`)."""
    raw = pl.concat([failing_events(settings, d) for d in event_days], how="vertical_relaxed")
    truth = pl.read_parquet(settings.landing / "truth_labels.parquet").select("event_id", "failure_mode")
    return raw.join(truth, on="event_id", how="left")


def run_nights(docs: pl.DataFrame, config: FailureConfig) -> tuple[pl.DataFrame, ModelState, float]:
    """Every night of `docs` in order, in memory; returns all assignments, the last state and the
    CPU seconds it took (CPU, not wall-clock: the machines are shared)."""
    state = ModelState(config.featurizer)
    kept: list[pl.DataFrame] = []
    out = []
    t0 = time.process_time()
    for day in docs["event_date"].unique().sort().to_list():
        recent = pl.concat(kept[-config.window_days:]) if kept else None
        result = advance(state, docs.filter(pl.col("event_date") == day), day, f"night-{day}", config, recent)
        state = result.state
        kept.append(result.kept)
        out.append(result.assignments)
    return pl.concat(out), state, time.process_time() - t0


def agreement(assignments: pl.DataFrame, modes: pl.DataFrame) -> dict[str, float]:
    """NMI and ARI of the clusters against the injected modes over events with a known mode
    (each unmatched event its own cluster), and the share unmatched."""
    joined = assignments.join(modes, on="event_id").filter(pl.col("failure_mode").is_not_null())
    truth = joined["failure_mode"].to_list()
    ids = joined["cluster_id"].to_list()
    pred = [str(c) if c is not None else f"unmatched-{i}" for i, c in enumerate(ids)]
    return {"nmi": normalized_mutual_info_score(truth, pred), "ari": adjusted_rand_score(truth, pred),
            "unmatched": sum(c is None for c in ids) / max(1, len(ids)), "events": float(len(ids))}


def emerging_delay(assignments: pl.DataFrame, modes: pl.DataFrame, state: ModelState, name: str) -> int | None:
    """Days from the emerging mode's first failing event to the birth of the cluster holding most of it."""
    hits = assignments.join(modes, on="event_id").filter(pl.col("failure_mode") == name)
    per = hits.filter(pl.col("cluster_id").is_not_null()).group_by("cluster_id").len().sort("len", "cluster_id",
                                                                                          descending=[True, False])
    if per.height == 0:
        return None
    born = {c.cluster_id: c.born_date for c in state.clusters}[per["cluster_id"][0]]
    return (born - hits["event_date"].min()).days


def method_configs() -> dict[str, FailureConfig]:
    """The chosen configuration and one per alternative fit method (the same nightly process)."""
    base = FailureConfig()
    out = {"louvain (chosen)": base}
    for method in METHODS:
        if method != "louvain":
            out[method] = replace(base, fit=FitParams(method=method), first_resolution=None)
    return out


def compare(days: int, events_per_day: int, seed: int, work: Path, methods: list[str] | None = None) -> pl.DataFrame:
    """One row per fit method: agreement with the injected modes, clusters, emerging delay, CPU seconds."""
    settings, truth, event_days = sample_store(work, days, events_per_day, seed)
    raw = labelled_raw(settings, event_days)
    docs = documents(raw)
    modes = raw.select("event_id", "failure_mode")
    rows = []
    for name, cfg in method_configs().items():
        if methods and cfg.fit.method not in methods:
            continue
        assignments, state, seconds = run_nights(docs, cfg)
        rows.append({"method": name, **agreement(assignments, modes), "clusters": len(state.clusters),
                     "distinct_names": len({c.label for c in state.clusters if c.label}),
                     "emerging_delay_days": emerging_delay(assignments, modes, state,
                                                           truth["emerging_failure_mode"]["name"]),
                     "cpu_seconds": round(seconds, 1)})
    return pl.DataFrame(rows)


def scale(n_docs: int, days: int, events_per_day: int, seed: int, work: Path, cold: bool = False) -> dict[str, float]:
    """Time and peak memory of a last night of `n_docs` failing events after `days - 1` normal nights
    (`cold`: as the very first night, with no model yet)."""
    settings, _, event_days = sample_store(work, days, events_per_day, seed)
    raw = labelled_raw(settings, event_days).drop("failure_mode")
    cfg = FailureConfig()
    history = documents(raw.filter(pl.col("event_date") < event_days[-1]))
    if cold:
        state, warm_seconds = ModelState(cfg.featurizer), 0.0
    else:
        _, state, warm_seconds = run_nights(history, cfg)
    template = raw.drop("event_date")
    reps = -(-n_docs // template.height)
    big = pl.concat([template.with_columns((pl.col("event_id") + f"-{k}").alias("event_id")) for k in range(reps)])
    big = big.head(n_docs).with_columns(pl.lit(event_days[-1]).alias("event_date"))
    del template
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    docs = documents(big)
    del big
    t_docs = time.perf_counter() - t0
    result = advance(state, docs, event_days[-1], "big-night", cfg, None)
    t_model = time.perf_counter() - t0 - t_docs
    result.assignments.write_parquet(work / "assignments.parquet", compression="zstd")
    total = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return {"failing_events": float(docs.height), "clusters_after": float(len(result.state.clusters)),
            "seconds_documents": round(t_docs, 1),
            "seconds_model": round(t_model, 1), "seconds_total": round(total, 1), "cpu_seconds_total": round(cpu, 1),
            "unmatched_share": round(float(result.assignments["cluster_id"].is_null().mean()), 4),
            "warm_nights_seconds": round(warm_seconds, 1), "peak_rss_mb_before_night": round(rss_before),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def mlqe_pe_raw(data: Path, rows_per_day: int = 1000, heavy: float = 0.3, start: date = START) -> pl.DataFrame:
    """MLQE-PE's heavily post-edited machine translations (`mlqe_pe_<pair>_train.tsv` in `data`) as
    raw failing events, as examples/mlqe_pe converts them: scenario `translation_<pair>`, input =
    source, output = `mt`, final text = `post_edit`, outcome edited where the two differ after
    whitespace normalisation, a heavy edit where their normalised character Levenshtein distance is
    at least `heavy` (the pipeline's default threshold); each pair cut in file order into days of
    `rows_per_day` rows from `start`."""
    from flywheel.outcomes.resolve import edit_distances

    frames = []
    for path in sorted(data.glob("mlqe_pe_*_train.tsv")):
        pair = path.stem.split("_")[2]
        rows = pl.read_csv(path, separator="\t", quote_char=None, infer_schema=False)
        chars, _ = edit_distances(rows["mt"].to_list(), rows["post_edit"].to_list())
        same = pl.col("mt").str.replace_all(r"\s+", " ").str.strip_chars() == \
            pl.col("post_edit").str.replace_all(r"\s+", " ").str.strip_chars()
        rows = rows.with_columns(pl.Series("distance", chars), pl.int_range(pl.len()).alias("i"))
        frames.append(rows.filter((pl.col("distance") >= heavy) & ~same).select(
            (pl.lit(f"{pair}-") + pl.col("segment")).alias("event_id"),
            (pl.lit(start) + pl.duration(days=pl.col("i") // rows_per_day)).cast(pl.Date).alias("event_date"),
            pl.lit(f"translation_{pair}").alias("scenario"), pl.lit("ok").alias("status"),
            pl.lit("edited").alias("outcome"), pl.lit("heavy").alias("edit_class"),
            pl.lit(None, dtype=pl.String).alias("reason_code"), pl.lit(None, dtype=pl.String).alias("comment"),
            pl.col("source").alias("input_text"), pl.col("mt").alias("output_text"),
            pl.col("post_edit").alias("final_text")))
    if not frames:
        raise FileNotFoundError(f"no mlqe_pe_<pair>_train.tsv in {data}")
    return pl.concat(frames)


def real(data: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The nightly process on MLQE-PE's heavy edits (`mlqe_pe_raw`: no comments, no reason codes):
    per scenario the failing events and the share unmatched, and the clusters known after the last
    night (id, events, name), largest first."""
    assignments, state, _ = run_nights(documents(mlqe_pe_raw(data)), FailureConfig())
    per = assignments.group_by("scenario").agg(pl.len().alias("failing"),
                                               pl.col("cluster_id").is_null().mean().alias("unmatched")).sort("scenario")
    clusters = pl.DataFrame([{"cluster_id": c.cluster_id, "events": c.size, "name": c.label} for c in state.clusters],
                            schema={"cluster_id": pl.Int64, "events": pl.Int64, "name": pl.String})
    return per, clusters.sort("events", "cluster_id", descending=[True, False])


_TABLES = tuple(t.path for t in (ASSIGNMENTS, CLUSTERS, CLUSTER_HISTORY, CLUSTER_DAILY))


def _failure_tables(settings: Settings) -> dict[str, pl.DataFrame]:
    from flywheel.objectstore import polars_options
    from flywheel.store import Layout

    out = {}
    layout = Layout(settings.store)
    for name in _TABLES:
        frame = pl.read_parquet(layout.table_glob(name), storage_options=polars_options(layout.root))
        frame = frame.drop([c for c in ("run_id", "born_run") if c in frame.columns])
        out[name] = frame.sort([c for c in frame.columns if frame.schema[c] != pl.List], nulls_last=True)
    return out


def _differences(got: Settings, clean: dict[str, pl.DataFrame]) -> dict[str, object]:
    tables = _failure_tables(got)
    a = clean[_TABLES[0]].select("event_id", "cluster_id")
    moved = a.join(tables[_TABLES[0]].select("event_id", "cluster_id"), on="event_id").filter(
        pl.col("cluster_id").ne_missing(pl.col("cluster_id_right"))).height
    return {"events_on_another_id": moved, "failing_events": a.height,
            **{f"equal_{n.split('/')[1]}": tables[n].equals(clean[n]) for n in _TABLES}}


def reruns(days: int, events_per_day: int, seed: int, work: Path) -> dict[str, dict[str, object]]:
    """Every night rerun, and the later half of the nights built first then `refresh_stale`,
    against one clean build in day order (see the module docstring)."""
    from flywheel.failures.tables import build_failures, refresh_stale

    settings, _, event_days = sample_store(work, days, events_per_day, seed)
    out: dict[str, dict[str, object]] = {}
    cpu = time.process_time()
    for day in event_days:
        build_failures(settings, day, run_id=f"clean-{day}")
    out["clean build"] = {"cpu_seconds": round(time.process_time() - cpu, 1)}
    clean = _failure_tables(settings)
    cpu = time.process_time()
    for day in event_days:
        build_failures(settings, day, run_id=f"rerun-{day}")
    out["every night rerun"] = {**_differences(settings, clean), "cpu_seconds": round(time.process_time() - cpu, 1)}
    cpu = time.process_time()
    out["refresh_stale, nothing stale"] = {"nights_rebuilt": len(refresh_stale(settings, run_id="refresh")),
                                           "cpu_seconds": round(time.process_time() - cpu, 2)}
    late = replace(settings, store=work / "out-of-order")
    shutil.copytree(settings.store, late.store, ignore=shutil.ignore_patterns("failures"))
    half = len(event_days) // 2
    for day in event_days[half:] + event_days[:half]:
        build_failures(late, day, run_id=f"late-{day}")
    out["later half built first"] = _differences(late, clean)
    cpu = time.process_time()
    rebuilt = refresh_stale(late, run_id="refresh")
    out["later half built first, then refresh_stale"] = {
        **_differences(late, clean), "nights_rebuilt": len(rebuilt), "cpu_seconds": round(time.process_time() - cpu, 1)}
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: `compare`, `scale` or `reruns` (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m flywheel.failures.benchmark")
    parser.add_argument("what", choices=("compare", "scale", "reruns", "real"))
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--events-per-day", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--methods", nargs="*", choices=METHODS, help="compare: only these fit methods")
    parser.add_argument("--cold", action="store_true", help="scale: the big night is the first night (no model yet)")
    parser.add_argument("--work", type=Path, default=None, help="folder for the generated store (default: temporary)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/mlqe-pe"),
                        help="real: the folder of mlqe_pe_<pair>_train.tsv")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        if args.what == "compare":
            with pl.Config(tbl_rows=20, tbl_cols=20, tbl_width_chars=200):
                print(compare(args.days, args.events_per_day, args.seed, work, args.methods))
        elif args.what == "real":
            per, clusters = real(args.data)
            with pl.Config(tbl_rows=100, fmt_str_lengths=160, tbl_width_chars=220):
                print(per)
                print(clusters)
            names = clusters["name"].to_list()
            print(f"clusters: {len(names)}, distinct non-empty names: {len({n for n in names if n})}")
        elif args.what == "reruns":
            for case, figures in reruns(args.days, args.events_per_day, args.seed, work).items():
                print(f"{case}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
        else:
            for key, value in scale(args.docs, args.days, args.events_per_day, args.seed, work, args.cold).items():
                print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
