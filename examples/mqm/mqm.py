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
severe error, first listed on ties). An edited or rejected event's `final_text` is the translation
with its error spans cut out (the data holds no corrected text; a rejected draft gets one too, so
that flywheel can describe the edit of every failing event, not only of the heavily edited ones). The human references (`ref`, `refB`) are
not AI output and are left out. There are no timestamps: each talk is one night (talks in file
order from 2026-01-05, segment s at 00:00 + s minutes), the review an hour later.

`run` runs the pipeline: ingest and outcomes as `flywheel run` does (the nightly job's assets of those
groups, `assets.runner.run_days`), then the failure model night by night with this example's
configuration. `evaluate` measures the clusters of the failing events against the categories: NMI,
and the NMI of the same clusters against randomly permuted categories (mean and maximum over
`shuffles` permutations).
"""

from __future__ import annotations

import argparse
import re
import sys
import unicodedata
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

from assets.runner import run_days
from flywheel.config import Settings
from flywheel.failures import build_failures
from flywheel.failures.documents import day_documents
from flywheel.failures.features import DEFAULT_WEIGHTS, Featurizer
from flywheel.failures.model import FailureConfig
from flywheel.store import Layout

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/: what the examples share
from landing_files import stable_id, stamp, write_landing  # noqa: E402

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


def events_and_reviews(rows: pl.DataFrame, rejected_final: bool = True) -> tuple[list[dict], list[dict], pl.DataFrame]:
    """The events, interventions and truth labels of the annotation rows (see the module docstring);
    with `rejected_final`, a rejected event's review carries the same stand-in `final_text` as an
    edited one's (the translation with its error spans cut out), so its edit can be described."""
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
        event_id = "mqm_" + stable_id(pair, system, doc, seg, rater)
        at = datetime.combine(START + timedelta(days=int(first["night"])), datetime.min.time(), timezone.utc) \
            + timedelta(minutes=int(seg))
        events.append({"event_id": event_id, "occurred_at": stamp(at), "scenario": f"translation_{pair}",
                       "model": system, "prompt_version": "wmt21", "autonomy_level": "assist",
                       "input_text": first["source"], "output_text": output, "status": "ok",
                       "attributes": {"talk": doc, "segment": int(seg), "rater": rater}})
        review = {"intervention_id": "iv_" + event_id[4:], "event_id": event_id,
                  "occurred_at": stamp(at + timedelta(hours=1)), "action": action, "reviewer_id": rater}
        if evidence:
            review["comment"] = " | ".join(evidence)
        if action == "edited" or (action == "rejected" and rejected_final):
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


def convert(paths: list[Path], landing: Path, rejected_final: bool = True) -> pl.DataFrame:
    """Write the events and interventions of the annotation files into `landing` (JSON Lines) and
    `truth_labels.parquet` beside them; returns the truth labels. `rejected_final`: see
    `events_and_reviews`."""
    rows = pl.concat([read_tsv(p) for p in paths])
    events, interventions, truth = events_and_reviews(rows, rejected_final)
    for kind, records in (("events", events), ("interventions", interventions)):
        write_landing(landing, kind, f"mqm-{kind}", records)
    truth.write_parquet(landing / "truth_labels.parquet")
    return truth


def run(settings: Settings, config: FailureConfig = MQM_CONFIG) -> list[date]:
    """Ingest the landing folder and resolve outcomes as `flywheel run` does (the nightly job's
    ingest and outcomes assets, `assets.runner.run_days`), then build the failure tables night by
    night with `config` (the job's failures asset would use the model's defaults); returns the days."""
    ran = run_days(settings, None, None, quiet=True, progress=False, groups=("ingest", "outcomes"))
    days = ran.days if ran else []
    for day in days:
        build_failures(settings, day, run_id=f"mqm-{day}", config=config)
    return days


def evaluate(settings: Settings, truth: pl.DataFrame, shuffles: int = 100, seed: int = 0) -> pl.DataFrame:
    """How well the failure clusters recover the MQM categories (full, and top level such as
    Accuracy or Fluency), over the failing events that have a category: NMI (an unmatched event
    counts as a cluster of its own), the NMI of the same clusters against randomly permuted
    categories (mean and maximum over `shuffles` permutations: what chance alone scores, which with
    many small clusters is far from 0), the adjusted mutual information (0 = chance) and the same
    over the permutations (mean and maximum), and the NMI over matched events only."""
    assignments = pl.read_parquet(Layout(settings.store).table_glob("failures/assignments"))
    got = assignments.join(truth, on="event_id").filter(pl.col("category").is_not_null())
    pred = np.array([str(c) if c is not None else f"none-{i}" for i, c in enumerate(got["cluster_id"].to_list())])
    matched = got["cluster_id"].is_not_null().to_numpy()
    rng = np.random.default_rng(seed)
    rows = []
    for column in ("category", "top_category"):
        labels = np.array(got[column].to_list(), dtype=object)
        perms = [rng.permutation(labels) for _ in range(shuffles)]
        base = [normalized_mutual_info_score(p, pred) for p in perms]
        base_ami = [adjusted_mutual_info_score(p, pred) for p in perms]
        rows.append({"labels": column, "events": got.height, "unmatched": int((~matched).sum()),
                     "clusters": int(got["cluster_id"].n_unique() - (1 if (~matched).any() else 0)),
                     "nmi": normalized_mutual_info_score(labels, pred),
                     "shuffled_nmi_mean": float(np.mean(base)), "shuffled_nmi_max": float(np.max(base)),
                     "ami": adjusted_mutual_info_score(labels, pred),
                     "shuffled_ami_mean": float(np.mean(base_ami)), "shuffled_ami_max": float(np.max(base_ami)),
                     "nmi_matched": normalized_mutual_info_score(labels[matched], pred[matched])})
    return pl.DataFrame(rows)


def failing_documents(settings: Settings, truth: pl.DataFrame, days: list[date]) -> pl.DataFrame:
    """The failure documents (the evidence the failure model clusters, `flywheel.failures.documents`)
    of the failing events of `days` that have a category, with their `category` and `top_category`."""
    docs = pl.concat([day_documents(settings, day) for day in days], how="diagonal_relaxed")
    return docs.join(truth, on="event_id").filter(pl.col("category").is_not_null())


ORACLE_FIELDS: dict[str, tuple[str, ...]] = {
    "spans and notes": ("comment_text",),
    "spans, notes and the edit": ("comment_text", "removed_words", "added_words", "edit_text"),
    "spans, notes, the edit and the draft": ("comment_text", "removed_words", "added_words", "edit_text", "draft_text"),
}


def oracle(docs: pl.DataFrame, fields: tuple[str, ...], folds: int = 5, seed: int = 0) -> list[dict]:
    """What the evidence in `fields` can tell about the category at best, as a supervised upper
    bound: a linear support-vector classifier on word (1-2) and character (2-4) TF-IDF n-grams of those fields,
    trained with the categories and scored on held-out events (`folds`-fold cross-validation,
    stratified). Per label column (category, top_category): accuracy, the share of the most frequent
    label (what always guessing it scores), and the NMI and AMI of the held-out predictions against
    the labels: a clustering of the same evidence, which never sees the categories, is not expected
    to beat them."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.svm import LinearSVC

    present = [f for f in fields if f in docs.columns]
    text = docs.select(pl.concat_str([pl.col(f).fill_null("") for f in present], separator=" | ")).to_series().to_list()
    rows = []
    for column in ("category", "top_category"):
        labels = np.array(docs[column].to_list(), dtype=object)
        model = make_pipeline(
            make_union(TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=2),
                       TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=2)),
            LinearSVC(C=0.5))
        # a label with fewer members than folds cannot be stratified: fold it into the largest for the split only
        names, counts = np.unique(labels.astype(str), return_counts=True)
        rare = set(names[counts < folds].tolist())
        strata = np.array([x if x not in rare else "rare" for x in labels], dtype=object)
        split = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(text, strata))
        predicted = cross_val_predict(model, text, labels, cv=split)
        top_share = max(np.unique(labels, return_counts=True)[1]) / len(labels)
        rows.append({"fields": " + ".join(present), "labels": column, "events": len(labels),
                     "accuracy": float(np.mean(predicted == labels)), "majority": float(top_share),
                     "nmi": normalized_mutual_info_score(labels, predicted),
                     "ami": adjusted_mutual_info_score(labels, predicted)})
    return rows


def kmeans_reference(docs: pl.DataFrame, fields: tuple[str, ...], ks: tuple[int, ...] = (7, 16, 40, 100),
                     seeds: int = 3) -> list[dict]:
    """What a generic clustering of the same evidence reaches, without the categories: k-means
    (k in `ks`) on the same word and character TF-IDF n-grams as `oracle`, reduced to 100
    dimensions (truncated SVD) and scaled to unit length; per k, the AMI against the full and
    top-level categories, mean over `seeds` seeds."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union
    from sklearn.preprocessing import normalize

    present = [f for f in fields if f in docs.columns]
    text = docs.select(pl.concat_str([pl.col(f).fill_null("") for f in present], separator=" | ")).to_series().to_list()
    X = make_union(TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=2),
                   TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=2)).fit_transform(text)
    Z = normalize(TruncatedSVD(100, random_state=0).fit_transform(X))
    rows = []
    for k in ks:
        got = [KMeans(k, n_init=3, random_state=seed).fit_predict(Z) for seed in range(seeds)]
        rows.append({"fields": " + ".join(present), "k": k,
                     "ami_category": float(np.mean([adjusted_mutual_info_score(docs["category"], g) for g in got])),
                     "ami_top_category": float(np.mean([adjusted_mutual_info_score(docs["top_category"], g)
                                                        for g in got]))})
    return rows


def ambiguity(docs: pl.DataFrame, field: str = "comment_text") -> dict:
    """How often the same evidence carries different categories: of the failing events whose
    `field` text occurs more than once, the share whose text occurs with more than one category
    (full, and top level)."""
    grouped = docs.group_by(field).agg(pl.len().alias("n"), pl.col("category").n_unique().alias("k"),
                                       pl.col("top_category").n_unique().alias("k_top"))
    repeated = grouped.filter(pl.col("n") > 1)
    n = int(repeated["n"].sum())
    return {"field": field, "events_with_repeated_text": n,
            "mixed_category": float(repeated.filter(pl.col("k") > 1)["n"].sum() / n) if n else 0.0,
            "mixed_top_category": float(repeated.filter(pl.col("k_top") > 1)["n"].sum() / n) if n else 0.0}


def main(argv: list[str] | None = None) -> int:
    """Command line: convert the shared data, run the pipeline, print the agreement and the clusters."""
    parser = argparse.ArgumentParser(prog="examples/mqm/mqm.py")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2].parent / "shared/data/mqm-ted")
    parser.add_argument("--work", type=Path, required=True, help="folder for the landing files, store and database")
    parser.add_argument("--with-draft", action="store_true", help="keep the draft (translation) in the features")
    parser.add_argument("--rejected-without-final", action="store_true",
                        help="give rejected events no final_text (as before: only edited events have an edit)")
    parser.add_argument("--oracle", action="store_true",
                        help="also print what the evidence carries: a supervised classifier's cross-validated "
                             "scores, k-means on the same evidence, and how often identical evidence has two categories")
    args = parser.parse_args(argv)
    paths = sorted(args.data.glob("mqm_ted_*.tsv"))
    if not paths:
        print(f"no mqm_ted_*.tsv under {args.data}", file=sys.stderr)
        return 1
    settings = Settings(landing=args.work / "landing", store=args.work / "store", db=args.work / "flywheel.duckdb")
    truth = convert(paths, settings.landing, rejected_final=not args.rejected_without_final)
    config = replace(MQM_CONFIG, featurizer=Featurizer()) if args.with_draft else MQM_CONFIG
    days = run(settings, config)
    with pl.Config(tbl_rows=40, tbl_cols=14, tbl_width_chars=200, fmt_str_lengths=70):
        print(evaluate(settings, truth))
        if args.oracle:
            import warnings

            docs = failing_documents(settings, truth, days)
            print(ambiguity(docs))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a category of 1-4 events cannot be in every fold
                print(pl.DataFrame([r for fields in ORACLE_FIELDS.values() for r in oracle(docs, fields)]))
                print(pl.DataFrame(kmeans_reference(docs, ORACLE_FIELDS["spans, notes and the edit"])))
        clusters = pl.read_parquet(Layout(settings.store).table_glob("failures/clusters"))
        latest = clusters.filter(pl.col("event_date") == clusters["event_date"].max())
        print(latest.select("cluster_id", "label", "size_total", "born_date").sort("size_total", descending=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
