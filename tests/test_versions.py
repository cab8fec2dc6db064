"""Prompt-version comparisons: stratified by model x day (Cochran-Mantel-Haenszel), Holm over every
pair of a scenario's versions; the statistics pinned to values computed by hand."""

from __future__ import annotations

import math
from datetime import date

import polars as pl
import pytest

from flywheel.signals.policy import Policy
from flywheel.signals.recommend import version_decisions
from flywheel.stats import holm, mantel_haenszel

DAY = date(2026, 3, 10)
POLICY = Policy(version="t")  # versions: min_reviewed 100, alpha 0.05, min_effect 0.05


def _frame(counts: dict[tuple[str, str], tuple[int, int]], first_seen: dict[str, date]) -> pl.DataFrame:
    rows = [{"scenario": "s", "dimension": "prompt_version", "version": v, "other": model, "event_date": DAY,
             "reviewed": n, "accepted": k, "events": n, "first_seen": first_seen[v]} for (v, model), (k, n) in counts.items()]
    return pl.DataFrame(rows)


def _actions(frame: pl.DataFrame) -> dict[str, dict]:
    return {d["subject"]: d for d in version_decisions(frame, POLICY)}


SEEN = {"v1": date(2026, 3, 1), "v2": date(2026, 3, 8)}


def test_mantel_haenszel_and_holm_by_hand():
    # one stratum: the CMH statistic is the pooled two-proportion z times sqrt((N - 1) / N)
    pooled = (80 + 70) / 200
    z_two = (0.70 - 0.80) / math.sqrt(pooled * (1 - pooled) * (1 / 100 + 1 / 100))
    one = mantel_haenszel([80], [100], [70], [100])
    assert one["z"] == pytest.approx(z_two * math.sqrt(199 / 200)) and one["difference"] == pytest.approx(-0.10)
    assert mantel_haenszel([5], [10], [3], [0])["strata"] == 0  # a stratum one group never ran in says nothing
    assert holm([0.01, 0.04, 0.03], 0.05) == [True, False, False]  # 0.03 > 0.05 / 2 stops the walk
    assert holm([0.01, 0.02, 0.03], 0.05) == [True, True, True]


def test_a_version_is_not_blamed_for_the_model_it_ran_with():
    # v2 ran mostly on the hard model: pooled 645/1000 against v1's 915/1000 (a pooled test rolls it
    # back), yet within each model it does as well or better (0.96 vs 0.95, 0.61 vs 0.60)
    frame = _frame({("v1", "easy"): (855, 900), ("v1", "hard"): (60, 100),
                    ("v2", "easy"): (96, 100), ("v2", "hard"): (549, 900)}, SEEN)
    got = _actions(frame)
    assert got["v2"]["action"] == "keep" and got["v1"]["action"] == "keep"
    # weights n_a n_b / N = 90 in both strata: the common difference v1 - v2 is -0.01
    assert got["v1"]["evidence"]["compared_with"] == "v2"
    assert got["v1"]["evidence"]["effect"] == pytest.approx(-0.01)
    assert got["v1"]["evidence"]["stratified_by"] == "other_and_day"


def test_a_worse_version_is_caught_though_the_pooled_rate_looks_better():
    # v2 pooled 825/1000 against v1's 725/1000, but 0.10 worse on each model
    frame = _frame({("v1", "easy"): (95, 100), ("v1", "hard"): (630, 900),
                    ("v2", "easy"): (765, 900), ("v2", "hard"): (60, 100)}, SEEN)
    got = _actions(frame)
    assert got["v2"]["action"] == "roll_back" and got["v2"]["rule"] == "newest_significantly_worse"
    assert got["v1"]["action"] == "promote"
    ev = got["v2"]["evidence"]
    # easy: E(v2) = 900 * 860 / 1000 = 774, observed 765; hard: E = 100 * 690 / 1000 = 69, observed 60
    var = 100 * 900 * 860 * 140 / (1000 ** 2 * 999) + 900 * 100 * 690 * 310 / (1000 ** 2 * 999)
    assert ev["z"] == pytest.approx(-18 / math.sqrt(var)) and ev["effect"] == pytest.approx(-0.10)


def test_holm_keeps_three_borderline_versions_that_one_comparison_alone_would_retire():
    # each of v2..v4: 169 of 200 against v1's 900 of 1000 (effect -0.055, p = 0.023 < 0.05); alone it
    # is significantly worse; among four versions Holm runs over their 6 pairs (the best is chosen on
    # the same data) and needs 0.05 / 6 = 0.0083 for the smallest p
    seen = {"v1": date(2026, 3, 1), "v2": DAY, "v3": DAY, "v4": DAY}
    alone = _actions(_frame({("v1", "m"): (900, 1000), ("v2", "m"): (169, 200)}, seen))
    assert alone["v2"]["action"] == "roll_back" and alone["v2"]["evidence"]["p_value"] == pytest.approx(0.0228, abs=5e-4)
    three = _actions(_frame({("v1", "m"): (900, 1000), **{(v, "m"): (169, 200) for v in ("v2", "v3", "v4")}}, seen))
    assert {v: three[v]["action"] for v in ("v2", "v3", "v4")} == {"v2": "keep", "v3": "keep", "v4": "keep"}
    assert three["v2"]["evidence"]["comparisons"] == 6 and three["v2"]["evidence"]["holm_rejected"] is False
