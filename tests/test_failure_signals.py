"""Failure clusters as evidence: personal data never reaches the clustering text, and a new or
growing cluster becomes the `failure_cluster_growth` drift signal (hand-computed, and on the
generated data's emerging failure mode)."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from flywheel.failures.documents import documents
from flywheel.signals.drift import _severity
from flywheel.signals.failure_drift import failure_growth_rows
from flywheel.signals.policy import load_policy
from flywheel.store import Layout, write_parquet_atomic
from flywheel.tables import CLUSTER_DAILY

D1 = date(2026, 3, 1)
PII = {"comment": "customer jane.doe@example.com saw card 4111 1111 1111 1111",
       "output_text": "We will call you on +1 415 555 0199 about card 4111111111111111",
       "final_text": "We will call you about your refund"}


def _frame(**extra) -> pl.DataFrame:
    return pl.DataFrame([{"event_id": "a", "event_date": D1, "scenario": "s", "status": "ok", "outcome": "edited",
                          "reason_code": "pii", **PII, **extra}])


def test_clustering_text_is_redacted_by_default():
    row = documents(_frame()).row(0, named=True)
    text = " ".join(str(v) for v in row.values())
    for secret in ("jane.doe", "example.com", "4111", "0000 0000 0000 0000", "415", "0000000000000000"):
        assert secret not in text, secret
    assert "[email]" in row["comment_text"] and "[card]" in row["comment_text"]
    assert "[EMAIL]" in row["summary"] and "[CARD]" in row["summary"]
    assert set(row["removed_words"].split()) >= {"phone", "card"}  # the draft's number went; its tag did too
    kept = documents(_frame(), redact=False).row(0, named=True)
    assert "jane.doe@example.com" in kept["comment_text"] and "jane.doe@example.com" in kept["summary"]


def _cluster_daily(rows: list[dict]) -> pl.DataFrame:
    base = {"event_date": D1, "label": "x", "baseline_events": 0, "baseline_days": 7, "born_date": D1 - timedelta(days=90),
            "growth_ratio": None, "p_value": None, "q_value": None, "nights_seen": 9, "failures_before_birth": 0,
            "dispersion": 1.0, "is_new": False, "is_growing": False}
    return pl.DataFrame([{**base, **r} for r in rows])


def test_failure_growth_signal_hand_computed(tmp_path):
    layout = Layout(tmp_path / "store")
    yesterday = D1 - timedelta(days=1)
    frame = _cluster_daily([
        # a: cluster 1 was born yesterday and persists (5+ events both nights): new; cluster 2 grew
        # significantly but has only 3 events (< 5); cluster 3 shrank
        {"scenario": "a", "cluster_id": 1, "events": 6, "scenario_failures": 10, "share": 0.6, "baseline_failures": 10,
         "baseline_share": 0.5, "born_date": yesterday, "nights_seen": 2, "failures_before_birth": 40, "q_value": 0.9},
        {"scenario": "a", "cluster_id": 2, "events": 3, "scenario_failures": 10, "share": 0.3, "baseline_failures": 50,
         "baseline_share": 0.1, "q_value": 0.001},
        {"scenario": "a", "cluster_id": 3, "events": 1, "scenario_failures": 10, "share": 0.1, "baseline_failures": 50,
         "baseline_share": 0.9, "q_value": 1.0},
        # b: clusters 5 and 6 grew significantly (q <= 0.05) by 2x or more; cluster 7 grew but not significantly
        {"scenario": "b", "cluster_id": 5, "events": 12, "scenario_failures": 40, "share": 0.3, "baseline_failures": 200,
         "baseline_share": 0.1, "q_value": 0.02},
        {"scenario": "b", "cluster_id": 6, "events": 20, "scenario_failures": 40, "share": 0.5, "baseline_failures": 200,
         "baseline_share": 0.2, "q_value": 0.03},
        {"scenario": "b", "cluster_id": 7, "events": 8, "scenario_failures": 40, "share": 0.2, "baseline_failures": 200,
         "baseline_share": 0.05, "q_value": 0.2},
        # c: persists since yesterday, but the scenario had no failures before it: a store's first nights
        {"scenario": "c", "cluster_id": 8, "events": 9, "scenario_failures": 9, "share": 1.0, "baseline_failures": 9,
         "baseline_share": 1.0, "born_date": yesterday, "nights_seen": 2},
        # d: founded tonight with 30 events: one night is not a failure mode yet
        {"scenario": "d", "cluster_id": 9, "events": 30, "scenario_failures": 100, "share": 0.3, "baseline_failures": 0,
         "baseline_share": None, "born_date": D1, "nights_seen": 1, "failures_before_birth": 700},
        # e: a large scenario: 20% -> 23% is significant, but not the doubling that warns
        {"scenario": "e", "cluster_id": 10, "events": 460, "scenario_failures": 2000, "share": 0.23,
         "baseline_failures": 14000, "baseline_share": 0.2, "q_value": 1e-4},
    ])
    write_parquet_atomic(frame.to_arrow(), layout.table(CLUSTER_DAILY.path, D1))
    policy = load_policy()
    d = policy.drift
    assert (d.failure_min_events, d.failure_fdr_q, d.failure_min_ratio, d.failure_new_days, d.failure_new_nights) == (
        5, 0.05, 2.0, 1, 2)
    rows = {r["scenario"]: r for r in failure_growth_rows(layout, policy, D1)}
    a, b = rows["a"], rows["b"]
    assert (a["statistic"], a["current_value"], a["baseline_value"], a["effect"]) == (1.0, 0.6, 0.5, 0.6 - 0.5)
    assert (a["current_n"], a["baseline_n"], a["direction"], a["threshold"], a["p_value"]) == (10, 50, "worse", 1.0, None)
    assert (b["statistic"], b["p_value"], b["current_value"], b["baseline_value"]) == (2.0, 0.02, 0.5, 0.2)
    assert (b["current_n"], b["baseline_n"]) == (40, 200)
    assert _severity(dict(a), None, policy, {}) == "warn" and _severity(dict(b), None, policy, {}) == "warn"
    for quiet in ("c", "d", "e"):
        r = rows[quiet]
        assert (r["statistic"], r["p_value"], r["current_value"]) == (0.0, None, None), quiet
        assert _severity(dict(r), None, policy, {}) == "info"
    # the policy decides: at q 0.025 only cluster 5 of b is significant enough
    strict = policy.model_copy(update={"drift": d.model_copy(update={"failure_fdr_q": 0.025})})
    b = {r["scenario"]: r for r in failure_growth_rows(layout, strict, D1)}["b"]
    assert (b["statistic"], b["p_value"], b["current_value"]) == (1.0, 0.02, 0.3)
    assert failure_growth_rows(layout, policy, D1 + timedelta(days=1)) == []  # no failure tables that day
    # a day built before the growth tests existed (flags of the old rule, no q-values): flags nothing
    old = frame.drop("p_value", "q_value", "nights_seen", "failures_before_birth", "dispersion").with_columns(
        is_new=True, is_growing=True)
    write_parquet_atomic(old.to_arrow(), layout.table(CLUSTER_DAILY.path, D1))
    assert [r["statistic"] for r in failure_growth_rows(layout, policy, D1)] == [0.0] * 5


def test_the_emerging_failure_mode_raises_the_growth_warning(sample_with_changes):
    settings, truth, decisions = sample_with_changes
    emerging = truth["emerging_failure_mode"]
    first = date.fromisoformat(emerging["first_date"])
    drift = pl.read_parquet(Layout(settings.store).table_glob("signals/drift")).filter(
        pl.col("signal") == "failure_cluster_growth")
    warned = drift.filter(pl.col("severity") == "warn")
    start = date.fromisoformat(truth["start"]) if "start" in truth else drift["day"].min()
    assert warned.filter(pl.col("day") == start).height == 0  # the first night has no baseline: nothing is "new"
    soon = warned.filter(pl.col("day").is_between(first, first + timedelta(days=2)))
    assert set(emerging["scenarios"]) & set(soon["scenario"].to_list())
    # a warning alone never demotes: where the growth warning fired and no drift signal of the
    # scenario was an alert, the autonomy decision was not a drift-alert demotion
    everything = pl.read_parquet(Layout(settings.store).table_glob("signals/drift"))
    alerted = set(everything.filter(pl.col("severity") == "alert").select("day", "scenario").iter_rows())
    checked = 0
    for day, scenario in warned.select("day", "scenario").iter_rows():
        if (day, scenario) in alerted:
            continue
        autonomy = decisions[day].filter((pl.col("kind") == "autonomy") & (pl.col("scenario") == scenario))
        assert autonomy.height == 1 and not autonomy["rule"][0].startswith("demote_drift_alert"), (day, scenario)
        checked += 1
    assert checked > 0


def test_features_hash_each_distinct_text_once_with_the_same_vectors():
    import scipy.sparse as sp

    from flywheel.failures.features import Featurizer

    rows = [{"event_id": f"e{i}", "event_date": D1, "scenario": "s", "status": ["ok", "error", "timeout"][i % 3],
             "outcome": "rejected", "reason_code": ["wrong_amount", "tone", "other"][i % 3],
             "comment": ["refund amount wrong", None, "too casual, emoji"][i % 3] if i % 4 else f"unique comment {i}",
             "output_text": f"draft {i % 5}", "final_text": None} for i in range(40)]
    docs = documents(pl.DataFrame(rows, schema_overrides={"final_text": pl.String, "comment": pl.String}))
    featurizer = Featurizer(n_features=2 ** 12)
    together = featurizer.transform(docs)
    one_by_one = sp.vstack([featurizer.transform(docs.slice(i, 1)) for i in range(docs.height)], format="csr")
    assert together.shape == (40, featurizer.width)
    assert abs(together - one_by_one).max() < 1e-6
    assert together.nnz == one_by_one.nnz
