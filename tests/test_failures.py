"""Failure-mode clustering: documents, stable ids, new clusters, idempotent nights, labels and growth
on hand-made failures; agreement with the injected failure modes on generated sample data."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import date, timedelta

import duckdb
import polars as pl
import pytest
from sklearn.metrics import normalized_mutual_info_score

from conftest import run_pipeline, write_jsonl
from flywheel.catalog import fill
from flywheel.config import Settings
from flywheel.failures import build_cluster_daily, build_failures, tables
from flywheel.failures.documents import DOCUMENT_SCHEMA, documents, failing_events
from flywheel.failures.fit import FitParams
from flywheel.failures.labels import ctfidf, label, top_terms
from flywheel.failures.model import ASSIGNMENT_SCHEMA, FailureConfig, ModelState, advance
from flywheel.failures.store import is_stale, load_snapshot, snapshot_meta
from flywheel.outcomes.resolve import build_event_outcomes
from flywheel.store import Layout, write_parquet_atomic
from flywheel.tables import views

D1 = date(2026, 3, 1)
D2 = D1 + timedelta(days=1)

AMOUNT = ["refund amount is wrong", "wrong refund amount corrected", "refund amount does not match the charge",
          "amount of the refund is wrong", "the refund amount was miscalculated"]
TONE = ["tone too casual with emoji", "casual tone, slang and emoji", "too casual, remove the emoji slang",
        "emoji and slang, tone is too casual", "casual chatty tone with emoji"]
PII = ["leaked the card number, privacy breach", "privacy: card number exposed", "exposes card number privacy leak",
       "card number leaked, privacy incident", "privacy leak of the full card number"]


def raw(prefix: str, day: date, comments: list[str], reason: str, n: int, scenario: str = "refund_request") -> list[dict]:
    """n failing events whose reviewers wrote the given comments (cycled) and reason code."""
    return [{"event_id": f"{prefix}{i:03d}", "event_date": day, "scenario": scenario, "status": "ok",
             "outcome": "rejected", "reason_code": reason, "comment": comments[i % len(comments)],
             "output_text": None, "final_text": None} for i in range(n)]


def docs_of(*groups: list[dict]) -> pl.DataFrame:
    rows = [r for g in groups for r in g]
    return documents(pl.DataFrame(rows, schema_overrides={"event_date": pl.Date, "output_text": pl.String,
                                                            "final_text": pl.String}))


def clusters_of(assignments: pl.DataFrame, prefix: str) -> set:
    return set(assignments.filter(pl.col("event_id").str.starts_with(prefix))["cluster_id"].to_list())


# ----------------------------------------------------------------------------- documents


def test_documents_describe_what_failed_and_what_the_human_changed():
    frame = documents(pl.DataFrame([
        {"event_id": "a", "event_date": D1, "scenario": "s", "status": "ok", "outcome": "edited",
         "reason_code": "WRONG_AMOUNT", "comment": "Refund was $120.50",
         "output_text": "We refunded 120.50 today lol", "final_text": "We refunded 9.00 dollars today"},
        {"event_id": "b", "event_date": D1, "scenario": "s", "status": "timeout", "outcome": "awaiting_review",
         "reason_code": "other", "comment": None, "output_text": None, "final_text": None,
         "error_type": "TimeoutError", "error_message": "model call exceeded 30s"},
    ]))
    a, b = frame.row(0, named=True), frame.row(1, named=True)
    assert a["reason_text"] == "wrong amount"
    assert a["comment_text"] == "refund was $000.00"  # digits keep their shape, not their value
    assert a["removed_words"].split() == ["000", "lol"]
    assert a["added_words"].split() == ["0", "dollars"]
    assert a["status_text"] == "" and a["system_text"] == ""
    assert b["reason_text"] == ""  # "other" says nothing
    assert b["status_text"] == "status_timeout"
    assert b["system_text"] == "timeouterror model call exceeded 00s"
    assert "status: timeout" in b["summary"] and "outcome: awaiting_review" in b["summary"]


def test_failing_events_are_the_bad_outcomes_and_the_failed_statuses(settings):
    def ev(eid: str, **kw) -> dict:
        return {"event_id": eid, "occurred_at": "2026-03-01T10:00:00Z", "scenario": "refund_request", "model": "m1",
                "prompt_version": "v1", "autonomy_level": "assist", "status": "ok", "confidence": 0.5,
                "output_text": "the refund of 10 dollars is on its way", **kw}

    def iv(iid: str, eid: str, action: str, **kw) -> dict:
        return {"intervention_id": iid, "event_id": eid, "occurred_at": "2026-03-01T12:00:00Z", "action": action,
                "review_seconds": 5, **kw}

    write_jsonl(settings.landing / "events" / "e.jsonl", [
        ev("ok-accepted"), ev("light"), ev("heavy"), ev("rejected"), ev("escalated"), ev("error", status="error",
                                                                                         output_text=None)])
    write_jsonl(settings.landing / "interventions" / "i.jsonl", [
        iv("1", "ok-accepted", "accepted"),
        iv("2", "light", "edited", final_text="the refund of 10 dollars is on its way!"),
        iv("3", "heavy", "edited", final_text="we cannot refund this order", reason_code="policy"),
        iv("4", "rejected", "rejected", comment="wrong amount"), iv("5", "escalated", "escalated")])
    run_pipeline(settings, [D1])
    build_event_outcomes(settings, D1)
    got = failing_events(settings, D1)
    assert sorted(got["event_id"].to_list()) == ["error", "escalated", "heavy", "rejected"]
    heavy = documents(got).filter(pl.col("event_id") == "heavy").row(0, named=True)
    assert set(heavy["added_words"].split()) == {"we", "cannot", "this", "order"}
    assert set(heavy["removed_words"].split()) == {"the", "of", "00", "dollars", "is", "on", "its", "way"}


# ----------------------------------------------------------------------------- the model, by hand


def test_ids_are_stable_from_one_night_to_the_next():
    first = advance(ModelState(FailureConfig().featurizer), docs_of(raw("a1-", D1, AMOUNT, "wrong_amount", 10),
                                                                    raw("t1-", D1, TONE, "tone", 10)), D1, "run-1")
    assert len(first.state.clusters) == 2
    amount, tone = clusters_of(first.assignments, "a1-"), clusters_of(first.assignments, "t1-")
    assert len(amount) == 1 and len(tone) == 1 and amount != tone
    assert set(first.assignments["matched_as"]) == {"founding"}
    second = advance(first.state, docs_of(raw("a2-", D2, AMOUNT, "wrong_amount", 9), raw("t2-", D2, TONE, "tone", 7)),
                     D2, "run-2", recent=first.kept)
    assert clusters_of(second.assignments, "a2-") == amount
    assert clusters_of(second.assignments, "t2-") == tone
    assert set(second.assignments["matched_as"]) == {"existing"}
    assert second.state.ids() == first.state.ids()


def test_only_failures_that_fit_no_cluster_found_a_new_one():
    first = advance(ModelState(FailureConfig().featurizer), docs_of(raw("a1-", D1, AMOUNT, "wrong_amount", 10),
                                                                    raw("t1-", D1, TONE, "tone", 10)), D1, "run-1")
    second = advance(first.state, docs_of(raw("a2-", D2, AMOUNT, "wrong_amount", 8), raw("t2-", D2, TONE, "tone", 8),
                                          raw("p2-", D2, PII, "privacy", 6)), D2, "run-2", recent=first.kept)
    born = [c for c in second.state.clusters if c.born_date == D2]
    assert len(born) == 1
    new_id = born[0].cluster_id
    assert clusters_of(second.assignments, "p2-") == {new_id}
    assert new_id not in clusters_of(second.assignments, "a2-") | clusters_of(second.assignments, "t2-")
    by = dict(second.assignments.group_by("matched_as").len().iter_rows())
    assert by == {"existing": 16, "founding": 6}
    assert {e["event_id"] for e in born[0].exemplars} <= {f"p2-{i:03d}" for i in range(6)}
    assert "privacy" in born[0].label or "card" in born[0].label


def test_too_few_failures_of_a_new_kind_found_nothing():
    first = advance(ModelState(FailureConfig().featurizer), docs_of(raw("a1-", D1, AMOUNT, "wrong_amount", 10)), D1, "r1")
    second = advance(first.state, docs_of(raw("a2-", D2, AMOUNT, "wrong_amount", 8), raw("p2-", D2, PII, "privacy", 3)),
                     D2, "r2", recent=first.kept)
    assert len(second.state.clusters) == 1
    pii = second.assignments.filter(pl.col("event_id").str.starts_with("p2-"))
    assert pii["cluster_id"].null_count() == 3 and set(pii["matched_as"]) == {"unmatched"}


def test_a_first_night_with_nothing_to_group_leaves_every_event_unmatched():
    result = advance(ModelState(FailureConfig().featurizer), docs_of(raw("p1-", D1, PII, "privacy", 3)), D1, "r1")
    assert result.assignments.height == 3 and set(result.assignments["matched_as"]) == {"unmatched"}
    assert result.state.clusters == [] and result.kept.height == 3


def test_new_clusters_take_ids_never_handed_out_before():
    state = ModelState(FailureConfig().featurizer, next_id=41)
    result = advance(state, docs_of(raw("a1-", D1, AMOUNT, "wrong_amount", 10), raw("t1-", D1, TONE, "tone", 10)),
                     D1, "r1")
    assert sorted(result.state.ids()) == [41, 42]
    assert result.state.next_id == 43


def test_a_large_night_fits_a_sample_and_still_assigns_every_event():
    cfg = FailureConfig(max_fit=12, fit=FitParams(min_size=3))
    result = advance(ModelState(cfg.featurizer), docs_of(raw("a1-", D1, AMOUNT, "wrong_amount", 30),
                                                         raw("t1-", D1, TONE, "tone", 30)), D1, "r1", cfg)
    a = result.assignments
    assert a.height == 60 and a["fitted"].sum() == 12
    assert a["cluster_id"].null_count() == 0
    assert len(clusters_of(a, "a1-")) == 1 and len(clusters_of(a, "t1-")) == 1
    assert set(a.filter(~pl.col("fitted"))["matched_as"]) == {"new"}


def test_state_round_trips_through_bytes():
    result = advance(ModelState(FailureConfig().featurizer), docs_of(raw("a1-", D1, AMOUNT, "wrong_amount", 10)), D1, "r1")
    back = ModelState.from_bytes(result.state.to_bytes())
    assert back.ids() == result.state.ids() and back.next_id == result.state.next_id and back.day == D1
    assert [c.to_json() for c in back.clusters] == [c.to_json() for c in result.state.clusters]
    assert (back.sums != result.state.sums).nnz == 0


# ----------------------------------------------------------------------------- labels


def test_ctfidf_by_hand_and_labels_of_distinctive_terms():
    counts = [{"refund": 6, "amount": 4, "customer": 10}, {"tone": 5, "emoji": 5, "customer": 10}]
    weights = ctfidf(counts)
    # A = mean terms per cluster = 20; f(customer) = 20, f(refund) = 6.
    import math
    assert weights[0]["refund"] == pytest.approx(6 / 20 * math.log(1 + 20 / 6))
    assert weights[0]["customer"] == pytest.approx(10 / 20 * math.log(1 + 20 / 20))
    assert top_terms(weights[0], 2) == ["refund", "amount"]  # the shared "customer" ranks below both
    assert top_terms({"wrong amount": 3.0, "amount": 2.0, "refund": 1.0}, 2) == ["wrong amount", "refund"]
    assert label(["a", "b", "c", "d"]) == "a / b / c" and label([]) == ""  # names() gives it a fallback


def test_cluster_labels_name_what_the_reviewers_said():
    result = advance(ModelState(FailureConfig().featurizer), docs_of(raw("a1-", D1, AMOUNT, "wrong_amount", 10),
                                                                     raw("t1-", D1, TONE, "tone", 10)), D1, "r1")
    names = {c.cluster_id: c.top_terms for c in result.state.clusters}
    amount = names[clusters_of(result.assignments, "a1-").pop()]
    tone = names[clusters_of(result.assignments, "t1-").pop()]
    assert "refund" in " ".join(amount) and "amount" in " ".join(amount)
    assert "emoji" in " ".join(tone) or "casual" in " ".join(tone)
    assert not set(" ".join(amount).split()) & set(" ".join(tone).split())


# ----------------------------------------------------------------------------- the store: nights, re-runs, ids


@pytest.fixture
def nights(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[date, pl.DataFrame]:
    """Hand-made documents per night, served instead of the store's (so the store layer is tested alone)."""
    by_day = {D1: docs_of(raw("a1-", D1, AMOUNT, "wrong_amount", 10), raw("t1-", D1, TONE, "tone", 10)),
              D2: docs_of(raw("a2-", D2, AMOUNT, "wrong_amount", 8), raw("t2-", D2, TONE, "tone", 8),
                          raw("p2-", D2, PII, "privacy", 6)),
              D2 + timedelta(days=1): pl.DataFrame(schema=DOCUMENT_SCHEMA)}
    monkeypatch.setattr(tables, "day_documents", lambda s, d, ahead=None: by_day[d])
    return by_day


def test_rerunning_a_night_gives_the_same_result_and_founds_nothing_twice(settings, nights):
    build_failures(settings, D1, run_id="run-1")
    first = build_failures(settings, D2, run_id="run-2")
    digest = snapshot_meta(Layout(settings.store), D2)["digest"]
    again = build_failures(settings, D2, run_id="run-3")
    cols = ["event_id", "cluster_id", "similarity", "matched_as"]
    assert again["failures/assignments"].select(cols).equals(first["failures/assignments"].select(cols))
    assert again["failures/clusters"].drop("born_run").equals(first["failures/clusters"].drop("born_run"))
    assert snapshot_meta(Layout(settings.store), D2)["digest"] == digest  # the same night, whichever run built it
    assert load_snapshot(Layout(settings.store), D2).state.next_id == 4
    born = again["failures/clusters"].filter(pl.col("born_date") == D2)
    assert born["cluster_id"].to_list() == [3] and born["born_run"].to_list() == ["run-3"]  # the run that built it
    history = again["failures/cluster_history"]
    row = history.filter(pl.col("born")).row(0, named=True)
    assert row["events_founding"] == 6 and row["born_run"] == "run-3" and row["run_id"] == "run-3"
    assert history.filter(~pl.col("born"))["events_existing"].sum() == 16


def test_a_night_without_failures_keeps_every_cluster(settings, nights):
    build_failures(settings, D1, run_id="run-1")
    before = build_failures(settings, D2, run_id="run-2")["failures/clusters"]
    quiet = build_failures(settings, D2 + timedelta(days=1), run_id="run-3")
    assert quiet["failures/assignments"].height == 0 and quiet["failures/cluster_daily"].height > 0
    after = quiet["failures/clusters"]
    assert after["cluster_id"].to_list() == before["cluster_id"].to_list()
    assert after["size_total"].to_list() == before["size_total"].to_list() and after["events"].sum() == 0
    assert quiet["failures/cluster_history"].height == 0
    assert not quiet["failures/cluster_daily"]["is_growing"].any()


def assert_as_a_clean_run(settings: Settings, clean_store, days: list[date]) -> None:
    """Every failure table of `days` in `settings`' store equals what building `days` in order in
    a new store gives (the columns naming runs aside)."""
    clean = dataclasses.replace(settings, store=clean_store)
    for day in days:
        build_failures(clean, day, run_id=f"clean-{day}")
    for name in ("failures/assignments", "failures/clusters", "failures/cluster_history", "failures/cluster_daily"):
        for day in days:
            got, want = (pl.read_parquet(Layout(s.store).table(name, day)) for s in (settings, clean))
            keep = [c for c in got.columns if c not in ("run_id", "born_run")]
            assert got.select(keep).equals(want.select(keep)), (name, day)


def test_rebuilding_an_earlier_night_rebuilds_the_nights_that_continued_from_it(settings, nights, tmp_path):
    build_failures(settings, D1, run_id="run-1")
    build_failures(settings, D2, run_id="run-2")
    assert tables.refresh_stale(settings, run_id="run-2") == []  # built in order: nothing to do
    assert load_snapshot(Layout(settings.store), D2).state.next_id == 4  # amount 1, tone 2, privacy 3 (born D2)
    # Late data: night 1 now also holds the privacy failures. Night 1 founds them (id 3, after
    # amount and tone, 10 events each), so night 2, built from the night 1 that had no such cluster,
    # is stale until it is rebuilt; rebuilt, its privacy failures join cluster 3.
    nights[D1] = docs_of(raw("a1-", D1, AMOUNT, "wrong_amount", 10), raw("t1-", D1, TONE, "tone", 10),
                         raw("x1-", D1, PII, "privacy", 7))
    rebuilt = build_failures(settings, D1, run_id="run-4")["failures/assignments"]
    assert clusters_of(rebuilt, "x1-") == {3}
    assert is_stale(Layout(settings.store), D2, FailureConfig().window_days)
    assert tables.refresh_stale(settings, run_id="run-4") == [D2]
    assert not is_stale(Layout(settings.store), D2, FailureConfig().window_days)
    night2 = pl.read_parquet(Layout(settings.store).table("failures/assignments", D2))
    assert clusters_of(night2, "p2-") == {3}
    assert set(night2.filter(pl.col("event_id").str.starts_with("p2-"))["matched_as"]) == {"existing"}
    assert load_snapshot(Layout(settings.store), D2).state.next_id == 4  # nothing founded on night 2 now
    # ... which is what a clean run over the same documents makes of both nights.
    assert_as_a_clean_run(settings, tmp_path / "clean", [D1, D2])


def test_a_night_built_before_the_night_it_continues_is_rebuilt_once_that_night_exists(settings, nights, tmp_path):
    # Two runs overlapping out of order: night 2 is built before night 1 exists (from no clusters)
    build_failures(settings, D2, run_id="run-b")
    early = pl.read_parquet(Layout(settings.store).table("failures/assignments", D2))
    assert set(early["matched_as"]) <= {"founding", "unmatched"}  # nothing known yet: all founded
    build_failures(settings, D1, run_id="run-a")
    assert is_stale(Layout(settings.store), D2, FailureConfig().window_days)
    assert tables.refresh_stale(settings, run_id="run-a") == [D2]
    assert tables.refresh_stale(settings, run_id="run-b") == []
    assert_as_a_clean_run(settings, tmp_path / "clean", [D1, D2])


# ----------------------------------------------------------------------------- growth, by hand


def _write_assignments(settings: Settings, day: date, rows: list[tuple[str, int | None]]) -> None:
    frame = pl.DataFrame({
        "event_id": [f"{day}-{i}" for i in range(len(rows))], "event_date": [day] * len(rows),
        "scenario": [s for s, _ in rows], "model": ["m"] * len(rows), "prompt_version": ["v1"] * len(rows),
        "status": ["ok"] * len(rows), "outcome": ["rejected"] * len(rows), "cluster_id": [c for _, c in rows],
        "similarity": [0.9] * len(rows), "matched_as": ["existing"] * len(rows), "fitted": [True] * len(rows),
        "run_id": ["r"] * len(rows)}, schema=ASSIGNMENT_SCHEMA)
    write_parquet_atomic(frame.to_arrow(), Layout(settings.store).table("failures/assignments", day))


def test_growth_shares_and_flags_computed_by_hand(settings):
    day = date(2026, 3, 10)
    # Baseline (the 2 days before): scenario s has 10 failures, cluster 1 has 2 of them, cluster 2 none.
    _write_assignments(settings, day - timedelta(days=2), [("s", 1)] * 1 + [("s", 3)] * 4)
    _write_assignments(settings, day - timedelta(days=1), [("s", 1)] * 1 + [("s", 3)] * 3 + [("s", None)])
    _write_assignments(settings, day - timedelta(days=5), [("s", 1)] * 50)  # outside the window
    # Today: 20 failures: cluster 1 has 8 (share 0.4 vs 0.2: growth 2), cluster 2 has 6 (new), 4 unmatched.
    _write_assignments(settings, day, [("s", 1)] * 8 + [("s", 2)] * 6 + [("s", 3)] * 2 + [("s", None)] * 4)
    clusters = pl.DataFrame({"event_date": [day] * 3, "cluster_id": [1, 2, 3], "label": ["one", "two", "three"],
                             "born_date": [date(2026, 1, 1), day, date(2026, 1, 1)]})
    write_parquet_atomic(clusters.to_arrow(), Layout(settings.store).table("failures/clusters", day))
    out = build_cluster_daily(settings, day, baseline_days=2, growth_factor=2.0, min_events=5)
    rows = {r["cluster_id"]: r for r in out.iter_rows(named=True)}
    assert set(rows) == {1, 2, 3}
    one, two, three = rows[1], rows[2], rows[3]
    assert (one["events"], one["scenario_failures"], one["share"]) == (8, 20, 0.4)
    assert (one["baseline_events"], one["baseline_failures"], one["baseline_days"]) == (2, 10, 2)
    assert one["baseline_share"] == pytest.approx(0.2) and one["growth_ratio"] == pytest.approx(2.0)
    # Fisher, one-sided: P(X >= 8), X hypergeometric, 20 drawn of 30 holding the cluster's 10:
    # (C(10,8)C(20,12) + C(10,9)C(20,11) + C(10,10)C(20,10)) / C(30,20) = 7533006 / 30045015
    assert one["dispersion"] == 1.0  # day x cluster chi-square 8/7 on 2 degrees of freedom: below 1
    assert one["p_value"] == pytest.approx(7533006 / 30045015)
    assert three["p_value"] == pytest.approx(1 - (21 + 9 * 210) / 30045015)  # 1 - P(X <= 1), X of 9 in 30
    assert one["q_value"] == pytest.approx(2 * 7533006 / 30045015)  # BH over the night's two tested pairs
    assert three["q_value"] == pytest.approx(three["p_value"])
    # doubled, but 8 of 20 against 2 of 10 happens one night in four: not growing
    assert one["is_growing"] is False and one["is_new"] is False and one["label"] == "one"
    # born today: nothing before its birth to test against, and seen on one night only: neither flag
    assert two["baseline_failures"] == 0 and two["baseline_share"] is None and two["p_value"] is None
    assert (two["nights_seen"], two["failures_before_birth"]) == (1, 10)
    assert two["is_new"] is False and two["is_growing"] is False
    assert three["share"] == pytest.approx(0.1) and three["baseline_share"] == pytest.approx(0.7)
    assert three["growth_ratio"] == pytest.approx(0.1 / 0.7) and three["is_growing"] is False
    assert Layout(settings.store).table("failures/cluster_daily", day).exists()


# ----------------------------------------------------------------------------- generated sample data

SAMPLE_START = date(2026, 3, 1)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Settings, dict, list[date]]:
    from flywheel.failures.benchmark import sample_store
    from flywheel.failures.patterns import build_edit_patterns

    root = tmp_path_factory.mktemp("failures-sample")
    settings, truth, days = sample_store(root, days=14, events_per_day=2000, seed=9)
    for day in days:  # as the nightly job: the failure tables and the edit patterns
        build_failures(settings, day, run_id=f"night-{day}")
        build_edit_patterns(settings, day)
    return settings, truth, days


def _read(settings: Settings, table: str) -> pl.DataFrame:
    return pl.read_parquet(Layout(settings.store).table_glob(table))


def test_clusters_agree_with_the_injected_failure_modes(sample):
    settings, _, _ = sample
    truth = pl.read_parquet(settings.landing / "truth_labels.parquet").select("event_id", "failure_mode")
    got = _read(settings, "failures/assignments").join(truth, on="event_id").filter(pl.col("failure_mode").is_not_null())
    assert got.height > 2500
    pred = [str(c) if c is not None else f"none-{i}" for i, c in enumerate(got["cluster_id"].to_list())]
    nmi = normalized_mutual_info_score(got["failure_mode"].to_list(), pred)
    assert nmi >= 0.8, nmi


def test_the_emerging_failure_mode_is_flagged_new_within_a_day(sample):
    settings, truth, _ = sample
    emerging = truth["emerging_failure_mode"]
    first = date.fromisoformat(emerging["first_date"])
    labels = pl.read_parquet(settings.landing / "truth_labels.parquet").select("event_id", "failure_mode")
    hits = _read(settings, "failures/assignments").join(labels, on="event_id").filter(
        pl.col("failure_mode") == emerging["name"])
    top = hits.group_by("cluster_id").len().sort("len", descending=True)["cluster_id"][0]
    assert top is not None
    assert hits.filter(pl.col("cluster_id") == top).height >= 0.8 * hits.height
    daily = _read(settings, "failures/cluster_daily").filter((pl.col("cluster_id") == top) & pl.col("is_new"))
    assert daily.height > 0
    flagged = daily["event_date"].min()
    assert flagged <= first + timedelta(days=1)
    on_birth = daily.filter(pl.col("event_date") == flagged)
    in_emerging = on_birth.filter(pl.col("scenario").is_in(emerging["scenarios"]))["events"].sum()
    assert in_emerging >= 0.8 * on_birth["events"].sum()  # flagged where the mode appeared
    born = _read(settings, "failures/clusters").filter(pl.col("cluster_id") == top)["born_date"].unique().to_list()
    # new once it persists: seen with min_events events on its birth night and the next
    assert len(born) == 1 and first <= born[0] and flagged - born[0] <= timedelta(days=1)


def test_ids_stay_the_same_from_one_night_to_the_next(sample):
    settings, _, days = sample
    labels = pl.read_parquet(settings.landing / "truth_labels.parquet").select("event_id", "failure_mode")
    got = _read(settings, "failures/assignments").join(labels, on="event_id").filter(pl.col("failure_mode").is_not_null())
    majority = (got.group_by("event_date", "failure_mode", "cluster_id").len()
                .sort("len", descending=True).group_by("event_date", "failure_mode", maintain_order=True)
                .agg(pl.col("cluster_id").first(), pl.col("len").sum().alias("n")))
    pairs = same = 0
    for a, b in zip(days[-6:-1], days[-5:]):
        left = majority.filter((pl.col("event_date") == a) & (pl.col("n") >= 10))
        right = majority.filter((pl.col("event_date") == b) & (pl.col("n") >= 10))
        joined = left.join(right, on="failure_mode")
        pairs += joined.height
        same += joined.filter(pl.col("cluster_id") == pl.col("cluster_id_right")).height
    assert pairs >= 40
    assert same / pairs >= 0.9, (same, pairs)
    # Re-running the last night from the same state changes nothing.
    before = _read(settings, "failures/assignments").filter(pl.col("event_date") == days[-1]).drop("run_id")
    build_failures(settings, days[-1], run_id="again")
    after = _read(settings, "failures/assignments").filter(pl.col("event_date") == days[-1]).drop("run_id")
    assert after.equals(before)


FAILURE_TABLES = ("failures/assignments", "failures/clusters", "failures/cluster_history", "failures/cluster_daily")
RUN_COLUMNS = ("run_id", "born_run")  # name the run that built a night, so a rerun differs there by design


def failure_tables(settings: Settings) -> dict[str, pl.DataFrame]:
    """Every row of every failure table, without the columns naming runs, in a fixed order."""
    out = {}
    for name in FAILURE_TABLES:
        frame = _read(settings, name)
        frame = frame.drop([c for c in RUN_COLUMNS if c in frame.columns])
        out[name] = frame.sort([c for c in frame.columns if frame.schema[c] != pl.List], nulls_last=True)
    return out


def test_rerunning_the_nights_leaves_every_failure_table_as_the_clean_run_made_it(sample, tmp_path):
    settings, _, days = sample
    shutil.copytree(settings.store, tmp_path / "store")
    copy = dataclasses.replace(settings, store=tmp_path / "store")
    clean = failure_tables(copy)
    assert clean["failures/clusters"].filter(pl.col("event_date") == days[-1]).height > 10
    for day in days:  # every night again, in order
        build_failures(copy, day, run_id=f"rerun-{day}")
    again = failure_tables(copy)
    for name in FAILURE_TABLES:
        assert again[name].equals(clean[name]), f"{name} differs after rerunning every night"
    build_failures(copy, days[4], run_id="one-night")  # one night in the middle, alone
    again = failure_tables(copy)
    for name in FAILURE_TABLES:
        assert again[name].equals(clean[name]), f"{name} differs after rerunning night {days[4]}"


def test_failure_views_document_every_column(sample):
    settings, _, days = sample
    layout = Layout(settings.store)
    con = duckdb.connect()
    con.execute("SET VARIABLE flywheel_store = ?", [str(settings.store)])
    for view in views("failures"):
        columns = [c[0] for c in con.sql(fill(view.sql, {}, layout)).description]
        assert sorted(columns) == sorted(view.columns), view.name
    clusters = next(v for v in views("failures") if v.name == "clusters")
    assert clusters.sql.count("{table:failures/clusters}") == 1
    nights = con.sql(f"SELECT DISTINCT event_date FROM ({fill(clusters.sql, {}, layout)})").fetchall()
    assert nights == [(max(days),)]  # the latest snapshot only


def test_failure_views_are_valid_before_any_night_is_built(settings):
    layout = Layout(settings.store)
    con = duckdb.connect()
    for view in views("failures"):
        assert con.sql(fill(view.sql, {}, layout)).fetchall() == [], view.name


def test_the_neighbour_graph_in_blocks_on_threads_is_the_single_pass_graph(monkeypatch):
    """`fit._knn` splits the rows into blocks on a thread per core; with blocks of 3 rows, on rows
    with many exact ties (repeated documents), it gives the graph of one dense pass, entry for entry."""
    import numpy as np
    import scipy.sparse as sp
    from sklearn.preprocessing import normalize

    from flywheel.failures import fit

    rng = np.random.default_rng(3)
    base = sp.random(12, 40, density=0.2, random_state=4, format="csr", dtype=np.float32)
    X = normalize(sp.vstack([base, base[:5], base[2:9]], format="csr"))[rng.permutation(24)]
    n, k = X.shape[0], 4
    S = (X @ X.T).toarray()
    np.fill_diagonal(S, -np.inf)
    idx = np.argpartition(-S, k - 1, axis=1)[:, :k]
    w = np.clip(np.take_along_axis(S, idx, 1), 0.0, None).astype(np.float64)
    single = sp.csr_matrix((w.ravel(), (np.repeat(np.arange(n), k), idx.ravel())), shape=(n, n))
    monkeypatch.setattr(fit, "_KNN_BLOCK", 3)
    monkeypatch.setattr(fit.os, "cpu_count", lambda: 4)  # the thread pool, whatever the runner's cores
    blocked = fit._knn(X, k)
    assert blocked.shape == single.shape and (blocked != single).nnz == 0
    assert np.array_equal(blocked.indices, single.indices) and np.array_equal(blocked.data, single.data)
    assert (blocked.getnnz(axis=1) <= k).all() and blocked.diagonal().sum() == 0
