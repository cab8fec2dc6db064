"""Google's MQM annotations of WMT 2021 TED talks as AI audit events and human reviews, clustered.

    python examples/mqm/mqm.py --data /work/shared/data/mqm-ted --work /tmp/mqm

`convert` turns the annotation TSVs (one row per error; see ABOUT.md beside the data) into the
landing contracts: one event per (system, talk, segment, rater): scenario = the language pair,
model = the system, input = the source, output = the translation (span markers removed), status ok,
autonomy `assist`; one intervention per event: `accepted` when the rater found no error, `edited`
when every error is Minor (or Neutral), `rejected` when one is Major or the segment is a
`Non-translation!`. The rater's evidence becomes the intervention's `comment`: the marked error
spans (a span without letters or digits, such as a wrong comma, written as the names of its
characters) and the rater's note; no reason code, and never the error category, which is kept
aside as the truth to measure against (`truth_labels.parquet`: the category of each event's most
severe error, first listed on ties). An edited event's `final_text` is the translation with its
error spans cut out (the data holds no corrected text). The human references (`ref`, `refB`) are
not AI output and are left out. There are no timestamps: each talk is one night (talks in file
order from 2026-01-05, segment s at 00:00 + s minutes), the review an hour later.

`evaluate` runs the pipeline (ingest, outcomes, the failure model night by night) and measures the
clusters of the failing events against the categories: NMI, and the NMI of the same clusters
against randomly permuted categories (mean and maximum over `shuffles` permutations).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import unicodedata
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

from flywheel.config import Settings
from flywheel.failures import build_failures
from flywheel.failures.features import DEFAULT_WEIGHTS, Featurizer
from flywheel.failures.model import FailureConfig
from flywheel.outcomes.ingest_days import ingest_and_resolve
from flywheel.store import Layout

START = date(2026, 1, 5)
REFERENCES = ("ref", "refB")
SEVERITY_RANK = {"Major": 3, "Minor": 2, "Neutral": 1, "No-error": 0}
SPAN = re.compile(r"<v>(.*?)</v>", re.S)
# The translation is the draft the same 14-15 systems wrote for the same source segment, so drafts
# resemble each other by segment, not by error: the example leaves the draft out of the features.
MQM_CONFIG = FailureConfig(featurizer=Featurizer(weights={**DEFAULT_WEIGHTS, "draft_text": 0.0}))


def read_tsv(path: Path) -> pl.DataFrame:
    """One MQM annotation file (tab-separated, no quoting), with a `pair` column from its name."""
    frame = pl.read_csv(path, separator="\t", quote_char=None, infer_schema=False)
    if "comment" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("comment"))
    pair = path.stem.rsplit("_", 1)[-1]
    return frame.with_columns(pl.lit(pair).alias("pair")).select(
        "pair", "system", "doc", "seg_id", "rater", "source", "target", "category", "severity", "comment")


def span_text(span: str) -> str:
    """The span as evidence: itself when it has a letter or digit, else the names of its characters."""
    span = span.strip()
    if not span:
        return "empty span"
    if any(ch.isalnum() for ch in span):
        return span
    return " ".join(unicodedata.name(ch, "symbol").lower() for ch in span if not ch.isspace())


def _id(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()


def events_and_reviews(rows: pl.DataFrame) -> tuple[list[dict], list[dict], pl.DataFrame]:
    """The events, interventions and truth labels of the annotation rows (see the module docstring)."""
    rows = rows.filter(~pl.col("system").is_in(list(REFERENCES)))
    talks = rows.select("pair", "doc").unique(maintain_order=True).with_columns(
        pl.int_range(pl.len()).over("pair").alias("night"))
    groups: dict[tuple, list[dict]] = {}
    for r in rows.join(talks, on=["pair", "doc"], maintain_order="left").to_dicts():
        groups.setdefault((r["pair"], r["system"], r["doc"], r["seg_id"], r["rater"]), []).append(r)
    events, interventions, truth = [], [], []
    for (pair, system, doc, seg, rater), grp in groups.items():
        first = grp[0]
        output = SPAN.sub(lambda m: m.group(1), first["target"])
        errors = [r for r in grp if r["severity"] != "No-error"]
        rank = [10 if r["category"].startswith("Non-translation") else SEVERITY_RANK.get(r["severity"], 1)
                for r in errors]
        action = "accepted" if not errors else "rejected" if max(rank) >= 3 else "edited"
        spans = [m.group(1) for r in errors for m in SPAN.finditer(r["target"])]
        evidence = [span_text(x) for x in spans] + [r["comment"] for r in errors if r["comment"]]
        event_id = "mqm_" + _id(pair, system, doc, seg, rater)
        at = datetime.combine(START + timedelta(days=int(first["night"])), datetime.min.time(), timezone.utc) \
            + timedelta(minutes=int(seg))
        events.append({"event_id": event_id, "occurred_at": _stamp(at), "scenario": f"translation_{pair}",
                       "model": system, "prompt_version": "wmt21", "autonomy_level": "assist",
                       "input_text": first["source"], "output_text": output, "status": "ok",
                       "attributes": {"talk": doc, "segment": int(seg), "rater": rater}})
        review = {"intervention_id": "iv_" + event_id[4:], "event_id": event_id,
                  "occurred_at": _stamp(at + timedelta(hours=1)), "action": action, "reviewer_id": rater}
        if evidence:
            review["comment"] = " | ".join(evidence)
        if action == "edited":
            final = output
            for x in spans:
                if x.strip():
                    final = final.replace(x, "", 1)
            review["final_text"] = re.sub(r"\s{2,}", " ", final).strip() or "(deleted)"
        interventions.append(review)
        category = errors[int(np.argmax(rank))]["category"] if errors else None  # argmax: first on ties
        truth.append({"event_id": event_id, "pair": pair, "category": category,
                      "top_category": category.split("/")[0].rstrip("!") if category else None})
    schema = {"event_id": pl.String, "pair": pl.String, "category": pl.String, "top_category": pl.String}
    return events, interventions, pl.DataFrame(truth, schema=schema)


def _stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def convert(paths: list[Path], landing: Path) -> pl.DataFrame:
    """Write the events and interventions of the annotation files into `landing` (JSON Lines) and
    `truth_labels.parquet` beside them; returns the truth labels."""
    rows = pl.concat([read_tsv(p) for p in paths])
    events, interventions, truth = events_and_reviews(rows)
    for kind, records in (("events", events), ("interventions", interventions)):
        folder = landing / kind
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"mqm-{kind}.jsonl", "w", encoding="utf-8") as fh:
            for r in records:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    truth.write_parquet(landing / "truth_labels.parquet")
    return truth


def run(settings: Settings, config: FailureConfig = MQM_CONFIG) -> list[date]:
    """Ingest the landing folder, resolve outcomes and build the failure tables night by night."""
    days = ingest_and_resolve(settings)
    for day in days:
        build_failures(settings, day, run_id=f"mqm-{day}", config=config)
    return days


def evaluate(settings: Settings, truth: pl.DataFrame, shuffles: int = 100, seed: int = 0) -> pl.DataFrame:
    """How well the failure clusters recover the MQM categories (full, and top level such as
    Accuracy or Fluency), over the failing events that have a category: NMI (an unmatched event
    counts as a cluster of its own), the NMI of the same clusters against randomly permuted
    categories (mean and maximum over `shuffles` permutations: what chance alone scores, which with
    many small clusters is far from 0), the adjusted mutual information (0 = chance), and the NMI
    over matched events only."""
    assignments = pl.read_parquet(Layout(settings.store).table_glob("failures/assignments"))
    got = assignments.join(truth, on="event_id").filter(pl.col("category").is_not_null())
    pred = np.array([str(c) if c is not None else f"none-{i}" for i, c in enumerate(got["cluster_id"].to_list())])
    matched = got["cluster_id"].is_not_null().to_numpy()
    rng = np.random.default_rng(seed)
    rows = []
    for column in ("category", "top_category"):
        labels = np.array(got[column].to_list(), dtype=object)
        base = [normalized_mutual_info_score(rng.permutation(labels), pred) for _ in range(shuffles)]
        rows.append({"labels": column, "events": got.height, "unmatched": int((~matched).sum()),
                     "clusters": int(got["cluster_id"].n_unique() - (1 if (~matched).any() else 0)),
                     "nmi": normalized_mutual_info_score(labels, pred),
                     "shuffled_nmi_mean": float(np.mean(base)), "shuffled_nmi_max": float(np.max(base)),
                     "ami": adjusted_mutual_info_score(labels, pred),
                     "nmi_matched": normalized_mutual_info_score(labels[matched], pred[matched])})
    return pl.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    """Command line: convert the shared data, run the pipeline, print the agreement and the clusters."""
    parser = argparse.ArgumentParser(prog="examples/mqm/mqm.py")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2].parent / "shared/data/mqm-ted")
    parser.add_argument("--work", type=Path, required=True, help="folder for the landing files, store and database")
    parser.add_argument("--with-draft", action="store_true", help="keep the draft (translation) in the features")
    args = parser.parse_args(argv)
    paths = sorted(args.data.glob("mqm_ted_*.tsv"))
    if not paths:
        print(f"no mqm_ted_*.tsv under {args.data}", file=sys.stderr)
        return 1
    settings = Settings(landing=args.work / "landing", store=args.work / "store", db=args.work / "flywheel.duckdb")
    truth = convert(paths, settings.landing)
    config = replace(MQM_CONFIG, featurizer=Featurizer()) if args.with_draft else MQM_CONFIG
    run(settings, config)
    with pl.Config(tbl_rows=40, tbl_cols=12, tbl_width_chars=160, fmt_str_lengths=70):
        print(evaluate(settings, truth))
        clusters = pl.read_parquet(Layout(settings.store).table_glob("failures/clusters"))
        latest = clusters.filter(pl.col("event_date") == clusters["event_date"].max())
        print(latest.select("cluster_id", "label", "size_total", "born_date").sort("size_total", descending=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
