"""The MLQE-PE worked example (examples/mlqe_pe): real machine translations and their professional
post-edits converted into the input contracts and run through the whole nightly pipeline
(`flywheel run`), on the committed sample; and on the whole shared data when it is there.

The pipeline tests state issue 15's done-when on this data: every failing event in a cluster with
a non-empty name, the names distinct and never "(no words)"; growth warnings on at most 5% of
scenario-days (the data has no change in it); the edit-pattern table answers "the 10 most
frequent substitutions per language pair" in SQL."""

from __future__ import annotations

import json
import math
from datetime import date

import duckdb
import polars as pl
import pytest

from worked_examples import FIXTURES, SHARED_DATA, load_example

FIXTURE = FIXTURES / "mlqe-pe"
SHARED = SHARED_DATA / "mlqe-pe"

mlqe = load_example("mlqe_pe")


def test_the_sample_keeps_its_licence():
    assert "CC0 1.0 Universal" in (FIXTURE / "LICENSE").read_text()
    note = (FIXTURE / "NOTE.md").read_text()
    assert "sheffieldnlp/mlqe-pe" in note and "150 of the 7,000" in note
    for pair in ("ende", "enzh"):
        rows = mlqe.read_tsv(FIXTURE / f"mlqe_pe_{pair}_train.tsv")
        assert rows.height == 150 and rows["segment"].is_unique().all()


def test_rows_become_one_event_and_one_review_each():
    rows = pl.DataFrame({
        "pair": ["ende"] * 3, "segment": [0, 1, 2], "source": ["Hello .", "Good day .", "Thank you ."],
        "mt": ["Hallo .", "Guten  Tag .", "Danke Ihnen ."], "post_edit": ["Hallo .", " Guten Tag . ", "Danke dir ."],
        "hter": [0.0, 0.0, 0.5], "model_logprob": [-0.5, 0.0, -2.0], "da_mean": [90.0, 95.0, 40.0]})
    events, reviews = mlqe.events_and_reviews(rows, rows_per_day=2, start=date(2026, 3, 1), shuffle=False)
    assert [e["scenario"] for e in events] == ["translation_ende"] * 3
    assert [e["output_text"] for e in events] == ["Hallo .", "Guten  Tag .", "Danke Ihnen ."]
    assert [e["input_text"] for e in events] == ["Hello .", "Good day .", "Thank you ."]
    assert [e["confidence"] for e in events] == [0.606531, 1.0, 0.135335]  # exp(-0.5), exp(0), exp(-2)
    # two rows a day, 36,000 s apart; the third row is the next day's first; reviews an hour later
    assert [e["occurred_at"] for e in events] == ["2026-03-01T00:00:00Z", "2026-03-01T10:00:00Z",
                                                  "2026-03-02T00:00:00Z"]
    assert [r["occurred_at"] for r in reviews][0] == "2026-03-01T01:00:00Z"
    assert [r["action"] for r in reviews] == ["accepted", "accepted", "edited"]  # the 2nd differs in whitespace only
    assert "final_text" not in reviews[0] and "final_text" not in reviews[1]
    assert reviews[2]["final_text"] == "Danke dir ."
    assert [r["event_id"] for r in reviews] == [e["event_id"] for e in events]
    assert len({e["event_id"] for e in events}) == 3
    # the default order is a fixed shuffle: a permutation that does not depend on the order given
    order = mlqe.shuffled(rows)["segment"].to_list()
    assert sorted(order) == [0, 1, 2] and mlqe.shuffled(rows.reverse())["segment"].to_list() == order
    shuffled_events, _ = mlqe.events_and_reviews(rows, rows_per_day=2, start=date(2026, 3, 1))
    assert [e["attributes"]["segment"] for e in shuffled_events] == order


def test_the_sample_converts_as_checked_by_hand(tmp_path):
    days = mlqe.convert(sorted(FIXTURE.glob("mlqe_pe_*_train.tsv")), tmp_path, rows_per_day=50)
    assert days == [date(2026, 2, 2), date(2026, 2, 3), date(2026, 2, 4)]
    events = {p: [json.loads(x) for x in (tmp_path / "events" / f"mlqe-pe-{p}-events.jsonl").read_text().splitlines()]
              for p in ("ende", "enzh")}
    reviews = {p: [json.loads(x) for x in
                   (tmp_path / "interventions" / f"mlqe-pe-{p}-interventions.jsonl").read_text().splitlines()]
               for p in ("ende", "enzh")}
    assert [len(events[p]) for p in events] == [150, 150]
    # shipped unchanged: en-de 47, en-zh 11 of 150 (en-zh: 8 of them differ from mt in spaces only)
    assert [sum(r["action"] == "accepted" for r in reviews[p]) for p in reviews] == [47, 11]
    zh = {e["attributes"]["segment"]: (e, r) for e, r in zip(events["enzh"], reviews["enzh"])}
    event, review = zh[4]  # "基尔 吉奥 斯 还 在 ..." post-edited to "Kyrgios   还 赞助 ..."
    assert event["scenario"] == "translation_enzh"
    assert math.isclose(event["confidence"], math.exp(-0.6139927506446838), abs_tol=1e-6)
    assert math.isclose(event["confidence"], 0.5412, abs_tol=1e-4)
    assert review["action"] == "edited" and review["final_text"].startswith("Kyrgios   还 赞助")
    assert event["occurred_at"] == "2026-02-02T15:36:00Z"  # 40th of day 1 in the shuffled order: 39 * 24 min
    event, review = zh[96]  # post_edit differs from mt only in the spaces around "，"
    assert event["output_text"] != review.get("final_text") and review["action"] == "accepted"
    de = {e["attributes"]["segment"]: (e, r) for e, r in zip(events["ende"], reviews["ende"])}
    assert de[194][1]["action"] == "accepted" and de[194][0]["occurred_at"] == "2026-02-02T01:12:00Z"
    assert de[2790][1]["final_text"] == "Barnabas ' Verliebtheit in Kitty Soames , Folge 844 bis 885 ."
    assert de[2790][0]["occurred_at"] == "2026-02-02T18:00:00Z"  # 46th of day 1: 45 * 24 min
    # 50 rows a day: en-de accepted 13, 15, 19 on the three days, en-zh 4, 2, 5
    per_day = [sum(r["action"] == "accepted" for e, r in zip(events[p], reviews[p]) if e["occurred_at"].startswith(d))
               for p in ("ende", "enzh") for d in ("2026-02-02", "2026-02-03", "2026-02-04")]
    assert per_day == [13, 15, 19, 4, 2, 5]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """The committed sample through `flywheel run`: 3 days of 50 rows per pair."""
    work = tmp_path_factory.mktemp("mlqe-sample")
    days = mlqe.convert(sorted(FIXTURE.glob("mlqe_pe_*_train.tsv")), work / "landing", rows_per_day=50)
    mlqe.run(work, days[0], days[-1])
    return work


def test_the_sample_runs_through_the_whole_pipeline(sample_run):
    con = mlqe.connect(sample_run)
    try:
        rates = mlqe.outcome_rates(con)
        assert rates.height == 6 and rates["events"].to_list() == [50] * 6
        accepted = rates.group_by("scenario").agg((pl.col("accepted") * pl.col("events")).sum().round().cast(pl.Int64))
        assert dict(accepted.iter_rows()) == {"translation_ende": 47, "translation_enzh": 11}
        failing = set(con.sql("SELECT event_id FROM outcomes.event_outcomes "
                              "WHERE outcome = 'edited' AND edit_class = 'heavy'").pl()["event_id"])
        assigned = set(con.sql("SELECT event_id FROM failures.assignments").pl()["event_id"])
        assert failing and assigned == failing  # heavy edits are this data's failing events, each assigned a row
        growth = mlqe.growth_warnings(con)
        assert growth.height == 6  # the growth signal, every scenario-day
        assert set(growth["severity"]) <= {"info", "warn"}
    finally:
        con.close()


def test_the_sample_answers_which_words_reviewers_always_change(sample_run):
    con = mlqe.connect(sample_run)
    try:
        top = mlqe.top_substitutions(con)
    finally:
        con.close()
    assert top.filter(pl.col("scenario") == "translation_enzh").height == 10
    first = top.filter(pl.col("scenario") == "translation_enzh").row(0, named=True)
    # the MT model ends Chinese sentences with "." where translators write "。": 59 of the sample's
    # edited en-zh rows have "." in mt and "。" in post_edit (56 as their last tokens)
    assert (first["before"], first["after"]) == (".", "。") and 50 <= first["events"] <= 59
    assert top.filter(pl.col("scenario") == "translation_ende").height == 10


def _named_clusters_check(con: duckdb.DuckDBPyConnection) -> None:
    """Every failing event is in a cluster, and the clusters' names are non-empty, not
    '(no words)' and distinct."""
    rows = con.sql("""SELECT a.event_id, a.cluster_id, c.label FROM failures.assignments a
                      LEFT JOIN failures.clusters c USING (cluster_id)""").pl()
    assert rows.height > 0
    assert rows["cluster_id"].null_count() == 0, f"{rows['cluster_id'].null_count()} of {rows.height} failing " \
                                                 "events fit no cluster"
    labels = con.sql("SELECT label FROM failures.clusters").pl()["label"].to_list()
    assert all(label and label.strip() and label != "(no words)" for label in labels), labels[:10]
    assert len(labels) == len(set(labels)), sorted(x for x in labels if labels.count(x) > 1)[:10]


def test_the_sample_every_failing_event_is_in_a_named_cluster(sample_run):
    con = mlqe.connect(sample_run)
    try:
        _named_clusters_check(con)
    finally:
        con.close()


@pytest.mark.skipif(not SHARED.exists(), reason=f"the shared MLQE-PE data is not at {SHARED} (optional larger run)")
def test_the_whole_shared_data_meets_the_issue(tmp_path):
    days = mlqe.convert(sorted(SHARED.glob("mlqe_pe_*_train.tsv")), tmp_path / "landing")
    assert len(days) == 7
    mlqe.run(tmp_path, days[0], days[-1])
    con = mlqe.connect(tmp_path)
    try:
        assert con.sql("SELECT count(*) FROM outcomes.event_outcomes").fetchall() == [(14000,)]
        _named_clusters_check(con)
        growth = mlqe.growth_warnings(con)
        assert growth.height == 14
        warned = int((growth["severity"] == "warn").sum())
        assert warned <= 0.05 * growth.height, f"growth warnings on {warned} of {growth.height} scenario-days"
        top = mlqe.top_substitutions(con)
        assert set(top["scenario"]) == {"translation_ende", "translation_enzh"}
        for (_,), part in top.group_by("scenario"):
            assert part.height == 10 and part["events"].is_sorted(descending=True)
            assert (part["before"] != part["after"]).all()
    finally:
        con.close()
