"""Growth of failure clusters, by hand: the one-sided exact test against the baseline, its
over-dispersion correction, Benjamini-Hochberg over the night's pairs, the minimum size and
effect, and "new" only for a cluster that persists."""

from __future__ import annotations

from datetime import date, timedelta
from math import comb

import polars as pl
import pytest
from scipy import stats

from flywheel.config import Settings
from flywheel.failures.growth import build_cluster_daily, flags, growth_pvalues, with_tests
from flywheel.failures.model import ASSIGNMENT_SCHEMA
from flywheel.store import Layout, write_parquet_atomic

D = date(2026, 3, 10)
OLD = date(2026, 1, 1)


def _upper_tail(x: int, n: int, b: int, m: int) -> float:
    """P(X >= x), X the cluster's events among n drawn from n + m events of which x + b are the cluster's."""
    k = x + b
    return sum(comb(k, j) * comb(n + m - k, n - j) for j in range(x, min(k, n) + 1)) / comb(n + m, n)


def test_exact_pvalues_by_hand():
    p = growth_pvalues([8, 5, 10, 3], [20, 100, 40, 0], [2, 0, 10, 0], [10, 50, 200, 10], [1.0, 1.0, 2.0, 1.0])
    assert p[0] == pytest.approx(7533006 / 30045015)  # 8 of 20 against 2 of 10
    # absent from a baseline of 50 failures, 5 of today's 100: all five fell on today, 1 time in 8;
    # a binomial test against the plug-in baseline share 0 would give p = 0
    assert p[1] == pytest.approx(comb(100, 5) / comb(150, 5)) and p[1] == pytest.approx(0.12726, abs=1e-5)
    # dispersion 2 halves every count: 5 of 20 against 5 of 100
    assert p[2] == pytest.approx(_upper_tail(5, 20, 5, 100))
    assert p[2] == pytest.approx(stats.fisher_exact([[5, 15], [5, 95]], alternative="greater").pvalue)
    assert growth_pvalues([10], [40], [10], [200])[0] == pytest.approx(_upper_tail(10, 40, 10, 200))
    assert p[2] > growth_pvalues([10], [40], [10], [200])[0]  # over-dispersed counts are weaker evidence
    assert p[3] != p[3]  # nothing failed today: no test (NaN)


def test_benjamini_hochberg_over_every_pair_of_the_night_and_the_flags():
    counts = pl.DataFrame({
        "scenario": ["a", "a", "b", "b"], "cluster_id": [1, 2, 3, 4],
        "events": [8, 5, 10, 3], "scenario_failures": [20, 20, 40, 0], "baseline_events": [2, 0, 10, 0],
        "baseline_failures": [10, 10, 200, 10], "dispersion": [1.0, 1.0, 2.0, 1.0],
        "born_date": [OLD] * 4, "nights_seen": [9] * 4, "failures_before_birth": [0] * 4})
    out = with_tests(counts)
    p1, p2, p3 = 7533006 / 30045015, _upper_tail(5, 20, 0, 10), _upper_tail(5, 20, 5, 100)
    assert out["p_value"].to_list()[:3] == pytest.approx([p1, p2, p3]) and out["p_value"][3] is None
    # three tests; ranked p3 < p2 < p1 (p2 = C(20,5)/C(30,5) = 0.1095): q = min over ranks >= own of p * 3 / rank
    assert p3 < p2 < p1
    assert out["q_value"].to_list()[:3] == pytest.approx([p1, min(p2 * 3 / 2, p1), min(p3 * 3, p2 * 3 / 2, p1)])
    assert out["q_value"][3] is None
    flagged = flags(out, D)
    # only b's cluster 3 is significant (q = 0.034), big enough (10 events) and at least doubled (0.25 vs 0.05)
    assert flagged["is_growing"].to_list() == [False, False, True, False]
    assert flagged["growth_ratio"][2] == pytest.approx(0.25 / 0.05)
    # the same evidence with a higher minimum effect or minimum size does not flag
    assert not flags(out, D, growth_factor=6.0)["is_growing"].any()
    assert not flags(out, D, min_events=11)["is_growing"].any()
    assert not flags(out, D, fdr_q=0.03)["is_growing"].any()


def _write_night(settings: Settings, day: date, rows: list[tuple[str, int | None, int]],
                 born: dict[int, date]) -> None:
    flat = [(s, c) for s, c, n in rows for _ in range(n)]
    frame = pl.DataFrame({
        "event_id": [f"{day}-{i}" for i in range(len(flat))], "event_date": [day] * len(flat),
        "scenario": [s for s, _ in flat], "model": ["m"] * len(flat), "prompt_version": ["v1"] * len(flat),
        "status": ["ok"] * len(flat), "outcome": ["rejected"] * len(flat), "cluster_id": [c for _, c in flat],
        "similarity": [0.9] * len(flat), "matched_as": ["existing"] * len(flat), "fitted": [True] * len(flat),
        "run_id": ["r"] * len(flat)}, schema=ASSIGNMENT_SCHEMA)
    layout = Layout(settings.store)
    write_parquet_atomic(frame.to_arrow(), layout.table("failures/assignments", day))
    known = sorted(c for c, b in born.items() if b <= day)
    clusters = pl.DataFrame({"event_date": [day] * len(known), "cluster_id": known,
                             "label": [f"c{c}" for c in known], "born_date": [born[c] for c in known]})
    write_parquet_atomic(clusters.to_arrow(), layout.table("failures/clusters", day))


def test_a_new_cluster_is_new_only_once_it_persists(settings):
    d1, d2, d3 = D - timedelta(days=1), D - timedelta(days=2), D - timedelta(days=3)
    born = {1: OLD, 2: d1, 3: d1, 4: D, 5: d2, 6: d1}
    steady = [("s", 1, 20), ("s", None, 2)]
    _write_night(settings, d3, steady, born)
    _write_night(settings, d2, steady + [("s", 5, 6)], born)
    _write_night(settings, d1, steady + [("s", 5, 6), ("s", 2, 6), ("s", 3, 6), ("t", 6, 8)], born)
    _write_night(settings, D, steady + [("s", 5, 6), ("s", 2, 7), ("s", 3, 2), ("s", 4, 9), ("t", 6, 8)], born)
    before = {r["cluster_id"]: r for r in build_cluster_daily(settings, d1).iter_rows(named=True)}
    # cluster 5, born two nights ago with 6 events on each of its two nights, in a scenario that had 22
    # failures the night before its birth: new
    assert (before[5]["nights_seen"], before[5]["failures_before_birth"], before[5]["is_new"]) == (2, 22, True)
    rows = {r["cluster_id"]: r for r in build_cluster_daily(settings, D).iter_rows(named=True)}
    two, three, four, five, six = rows[2], rows[3], rows[4], rows[5], rows[6]
    # born yesterday, 6 then 7 events: it persists (50 failures of s before its birth)
    assert (two["nights_seen"], two["failures_before_birth"], two["is_new"]) == (2, 22 + 28, True)
    # born yesterday with 6, only 2 today: a one-night cluster
    assert (three["nights_seen"], three["is_new"]) == (1, False)
    # founded tonight with 9: not yet
    assert (four["nights_seen"], four["is_new"], four["p_value"]) == (1, False, None)
    # s's dispersion: baseline nights x (cluster 1, the rest: unmatched and clusters born in the window),
    # 20/2, 20/8, 20/20 against shares 60/90 and 30/90; Pearson chi-square on (3 - 1) x (2 - 1) = 2 df
    x2 = sum((o - n * f) ** 2 / (n * f) for n, cells in ((22, (20, 2)), (28, (20, 8)), (40, (20, 20)))
             for o, f in zip(cells, (60 / 90, 30 / 90)))
    assert five["dispersion"] == pytest.approx(x2 / 2) and x2 / 2 == pytest.approx(5.55, abs=0.01)
    assert six["dispersion"] == 1.0  # t has one baseline night: nothing to estimate it from
    # born three nights ago: past its new_days; its share (6 of 46) is below its baseline since birth
    # (12 of 68); the counts divided by 5.55 and rounded: 1 of 8 against 2 of 12
    assert (five["is_new"], five["baseline_events"], five["baseline_failures"]) == (False, 12, 68)
    assert five["p_value"] == pytest.approx(_upper_tail(1, 8, 2, 12)) and five["is_growing"] is False
    # persists, but scenario t had no failures before it: a store's (or a scenario's) first nights say nothing
    assert (six["nights_seen"], six["failures_before_birth"], six["is_new"]) == (2, 0, False)
    assert not any(r["is_growing"] for r in rows.values())
    # with one night enough: 2, and 4 founded tonight (3 has 2 events today, 6 nothing before it)
    assert build_cluster_daily(settings, D, new_nights=1).filter("is_new")["cluster_id"].to_list() == [2, 4]


def test_the_policy_holds_the_growth_parameters_and_refuses_a_new_rule_that_cannot_fire(tmp_path):
    from flywheel.signals.policy import PolicyError, load_policy

    path = tmp_path / "policy.yaml"
    path.write_text("version: x\ndrift:\n  failure_fdr_q: 0.01\n  failure_new_days: 2\n  failure_new_nights: 3\n")
    d = load_policy(path).drift
    assert (d.failure_fdr_q, d.failure_min_ratio, d.failure_new_days, d.failure_new_nights) == (0.01, 2.0, 2, 3)
    path.write_text("version: x\ndrift:\n  failure_new_nights: 3\n")  # 3 nights within a day of birth: never
    with pytest.raises(PolicyError, match="failure_new_nights"):
        load_policy(path)
    path.write_text("version: x\ndrift:\n  failure_min_ratio: 1.0\n")
    with pytest.raises(PolicyError, match="failure_min_ratio"):
        load_policy(path)


def test_dispersion_in_a_young_store_counts_the_clusters_known_on_its_first_night(settings):
    # Every cluster was born on the store's first night (as on any new deployment): their day-to-day
    # swings are the dispersion, not one pooled category with nothing to compare.
    d2, d1 = D - timedelta(days=2), D - timedelta(days=1)
    born = {1: d2, 2: d2}
    _write_night(settings, d2, [("s", 1, 10), ("s", 2, 10)], born)
    _write_night(settings, d1, [("s", 1, 18), ("s", 2, 2)], born)
    _write_night(settings, D, [("s", 1, 10), ("s", 2, 10)], born)
    rows = {r["cluster_id"]: r for r in build_cluster_daily(settings, D).iter_rows(named=True)}
    # shares 28/40 and 12/40; each night has 20: expected 14 and 6; (4^2/14 + 4^2/6) x 2 nights on 1 df
    assert rows[2]["dispersion"] == pytest.approx(2 * (16 / 14 + 16 / 6))
    # 10 of 20 against 12 of 40, each divided by 7.62 and rounded: 1 of 3 against 2 of 5
    assert rows[2]["p_value"] == pytest.approx(_upper_tail(1, 3, 2, 5))


def test_the_stored_flags_follow_the_policy_growth_rules(settings, tmp_path):
    """cluster_daily's is_growing is the configured policy's (drift.failure_min_ratio), not a default."""
    import dataclasses

    born = {1: OLD, 2: OLD}
    for k in (1, 2, 3):
        _write_night(settings, D - timedelta(days=k), [("s", 1, 30), ("s", 2, 2)], born)
    _write_night(settings, D, [("s", 1, 30), ("s", 2, 20)], born)
    grown = build_cluster_daily(settings, D).filter(pl.col("cluster_id") == 2).row(0, named=True)
    # 20 of 50 today against 6 of 96 in the baseline: a share 6.4 times the baseline's
    assert grown["growth_ratio"] == pytest.approx((20 / 50) / (6 / 96)) and grown["is_growing"] is True
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: x\ndrift:\n  failure_min_ratio: 7.0\n")
    strict = dataclasses.replace(settings, policy=policy)
    assert build_cluster_daily(strict, D).filter(pl.col("cluster_id") == 2)["is_growing"].to_list() == [False]
    policy.write_text("version: x\ndrift:\n  failure_min_ratio: 6.0\n")
    assert build_cluster_daily(strict, D).filter(pl.col("cluster_id") == 2)["is_growing"].to_list() == [True]
