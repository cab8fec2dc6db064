"""`make bench-decisions` at its quick size: the section it writes (markers, tables, goals), that
writing it again replaces it and keeps the rest of the file, and what it measured: the sequential
monitors alert on a 10-point drop at 1,000 reviewed a day within 2 nights in every seed, and on a new
deployment long before the old rules could (they needed a 7-day baseline); no stream below the
promotion target is promoted."""

from __future__ import annotations

import pytest

from bench.decisions import END, START, render, run, write_section


@pytest.fixture(scope="module")
def quick():
    res, info = run(quick=True)
    info.update(command="python -m bench.decisions --quick", commit="test", machine="test", date="today")
    return res, info


def test_the_quick_run_writes_its_section_and_replaces_it(quick, tmp_path):
    res, info = quick
    section, goals = render(res, info)
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\n## Nightly run\n\nkept\n")
    write_section(out, section)
    write_section(out, section)
    text = out.read_text()
    assert text.count(START) == 1 and text.count(END) == 1 and "kept" in text
    for heading in ("False alarms on stationary streams", "Detection delay", "Confidence gates", "Promotions", "Goals"):
        assert f"### {heading}" in text
    assert [g[0] for g in goals] == ["<= 1 false alarm per scenario-quarter",
                                     "10-point drop alerted within 2 days at 1,000 reviewed a day",
                                     "gate violations at or below the stated level", "zero below-target promotions"]
    assert "python -m bench.decisions --quick" in text


def test_the_monitors_catch_a_ten_point_drop_fast_and_promote_nothing_below_target(quick):
    res, _ = quick
    det = {(r["method"], r["reviewed_per_day"], r["drop"], r["history"]): r for r in res["detection"]}
    ten = det[("after", 1000, 0.10, "35 days of history")]
    assert ten["seeds"] >= 20 and ten["within_2"] == 1.0 and ten["max"] <= 2
    new_after = det[("after", 1000, 0.10, "new deployment, drop on day 8")]
    new_before = det[("before", 1000, 0.10, "new deployment, drop on day 8")]
    assert new_after["max"] <= 2 and new_before["median"] >= 6
    below = [r for r in res["promotions"] if r["below_target"] and r["rule"] == "after"]
    assert below and sum(r["promoted"] for r in below) == 0
    above = [r for r in res["promotions"] if r["true_rate"] == 0.95 and r["rule"] == "after"]
    assert all(r["promoted"] == r["stream_quarters"] for r in above)
