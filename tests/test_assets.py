"""The ingest assets materialised by Dagster into a temporary store: metadata, checks, and a
failing Great Expectations check blocking what is downstream."""

from __future__ import annotations

from datetime import date

import dagster as dg
import polars as pl

import assets.ingest as ingest_assets
from assets.jobs import range_tags
from assets.resources import FlywheelResource
from conftest import write_jsonl
from flywheel.store import Layout, write_parquet_atomic
from test_ingest import event, intervention


def _resources(settings) -> dict:
    return {"flywheel": FlywheelResource(landing=str(settings.landing), store=str(settings.store), db=str(settings.db))}


def _materialize(settings, first: date, last: date) -> dg.ExecuteInProcessResult:
    return dg.materialize([ingest_assets.landing_files, ingest_assets.events, ingest_assets.interventions],
                          selection=[ingest_assets.EVENTS, ingest_assets.INTERVENTIONS],
                          resources=_resources(settings), tags=range_tags(first, last), raise_on_error=False)


def test_a_range_of_days_materialises_with_metadata_and_passing_checks(settings):
    write_jsonl(settings.landing / "events" / "a.jsonl",
                [event(1), event(2), event(3, occurred_at="2026-03-02T08:00:00Z"), event(2), '{"broken'])
    write_jsonl(settings.landing / "interventions" / "a.jsonl", [intervention(1, "e1"), intervention(2, "e3")])
    result = _materialize(settings, date(2026, 3, 1), date(2026, 3, 2))
    assert result.success
    mats = result.asset_materializations_for_node("ingest__events")
    assert len(mats) == 2  # one per day of the range
    assert {m.partition for m in mats} == {"2026-03-01", "2026-03-02"}
    meta = mats[0].metadata  # a range run reports over all its days, with a row per day
    assert meta["dagster/row_count"].value == 3
    assert meta["exact_duplicates"].value == 1
    assert "| 2026-03-01 | 3 | 2 | 1 | 0 |" in meta["days"].value
    assert "| 2026-03-02 | 1 | 1 | 0 | 0 |" in meta["days"].value
    assert meta["quarantined_by_reason"].value == {"invalid_json": 1}
    checks = {(e.asset_check_key.name): e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"gx_events": True, "gx_quarantine": True, "gx_interventions": True, "records_accounted_for": True}


def test_a_failing_gx_check_blocks_the_downstream_asset(settings, monkeypatch):
    write_jsonl(settings.landing / "events" / "a.jsonl", [event(1)])
    write_jsonl(settings.landing / "interventions" / "a.jsonl", [intervention(1, "e1")])
    real_build = ingest_assets.build_events

    def corrupting_build(s, day):  # a normalisation bug that lets a confidence of 1.5 through
        result = real_build(s, day)
        path = Layout(s.store).table("events", day)
        frame = pl.read_parquet(path).with_columns(pl.lit(1.5).alias("confidence"))
        write_parquet_atomic(frame.to_arrow(), path)
        return result

    monkeypatch.setattr(ingest_assets, "build_events", corrupting_build)
    result = _materialize(settings, date(2026, 3, 1), date(2026, 3, 1))
    evaluations = {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["gx_events"].passed is False
    assert evaluations["gx_events"].severity == dg.AssetCheckSeverity.ERROR
    assert result.asset_materializations_for_node("ingest__interventions") == []


def test_the_whole_nightly_job_on_sample_data_passes_every_check(settings):
    from assets.definitions import defs
    from flywheel.generate import generate

    generate(settings.landing, days=3, events_per_day=300, seed=2, start=date(2026, 3, 1), progress=False)
    job = defs.resolve_job_def("nightly")
    result = job.execute_in_process(tags=range_tags(date(2026, 3, 1), date(2026, 3, 3)), resources=_resources(settings),
                                    raise_on_error=False)
    assert result.success
    evaluations = {(e.asset_key.to_user_string(), e.asset_check_key.name): e.passed for e in result.get_asset_check_evaluations()}
    assert len(evaluations) == 6 and all(evaluations.values()), evaluations
    daily = result.asset_materializations_for_node("outcomes__daily_rates")[0].metadata
    table = daily["rates_last_day"].value
    assert table.startswith("| scenario | events | reviewed | accepted as-is |") and "| kb_answer |" in table
    calibration = [m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey(["outcomes", "calibration"])]
    assert "| scenario | reviewed | ECE | AUC | gate | coverage |" in calibration[0].materialization.metadata["gates_last_day"].value
    failures = {m.asset_key.to_user_string(): m.materialization.metadata for m in result.get_asset_materialization_events()
                if m.asset_key.path[0] == "failures"}
    assert set(failures) == {"failures/assignments", "failures/clusters", "failures/cluster_history",
                             "failures/cluster_daily", "failures/edit_patterns"}
    top = failures["failures/cluster_daily"]["top_clusters_last_day"].value
    assert top.startswith("| scenario | cluster | label | events | share | growth | flag |")
    assert top.count("\n") >= 4  # header, rule and at least one row per scenario with failures
    patterns = failures["failures/edit_patterns"]
    assert patterns["dagster/row_count"].value > 0  # the sample's reviewers edit drafts every day
    assert patterns["top_substitutions_last_day"].value.startswith("|")
    assigned = failures["failures/assignments"]["dagster/row_count"].value
    assert assigned > 0 and assigned == sum(failures["failures/assignments"]["matched_as"].value.values())

    # The analysts see the clusters; the same night run again keeps every id.
    import duckdb

    def clusters_of(day: str) -> list[tuple]:
        con = duckdb.connect(str(settings.db), read_only=True)
        con.execute("SET VARIABLE flywheel_store = ?", [str(settings.store)])
        try:
            return con.sql("SELECT event_id, cluster_id FROM failures.assignments WHERE event_date = ? ORDER BY 1",
                           params=[day]).fetchall()
        finally:
            con.close()

    before = clusters_of("2026-03-03")
    assert len(before) == assigned - len(clusters_of("2026-03-01")) - len(clusters_of("2026-03-02"))
    again = job.execute_in_process(tags=range_tags(date(2026, 3, 3), date(2026, 3, 3)), resources=_resources(settings),
                                   raise_on_error=False)
    assert again.success
    assert clusters_of("2026-03-03") == before


def test_rate_bounds_check_finds_rates_outside_their_intervals():
    from flywheel.outcomes.invariants import rates_out_of_bounds
    from flywheel.outcomes.rates import with_rates

    frame = with_rates(pl.DataFrame({name: [4, 0] for name in ["accepted", "edited", "rejected", "escalated", "reverted",
                                                              "reviewed", "events", "errors", "timeouts", "fallbacks",
                                                              "severe_failures"]}))
    assert rates_out_of_bounds(frame) == {}
    broken = frame.with_columns(pl.lit(1.2).alias("error_rate"))
    assert rates_out_of_bounds(broken) == {"error_rate": 2, "error_rate outside its interval": 2}


def test_the_top_clusters_table_fits_inline_in_the_dagster_ui():
    """Dagster shows Markdown metadata inline only below 1,000 characters; with long cluster names
    the table shows fewer clusters per scenario, then shorter names, never dropping a scenario."""
    from assets.failures import INLINE_MARKDOWN, top_clusters_markdown

    long_name = "omission: 5-12 words added / human replaced 'Sie' with 'du' / numbers changed"
    rows = [{"scenario": f"scenario_{s}", "cluster_id": c, "label": f"{long_name} #{c}", "events": 10 - c,
             "share": 0.1, "growth_ratio": None, "is_new": False, "is_growing": False}
            for s in range(6) for c in range(3)]
    frame = pl.DataFrame(rows)
    full = top_clusters_markdown(frame, limit=100_000)
    assert full.count("\n") == 1 + 18 and len(full) > INLINE_MARKDOWN  # every cluster, too long inline
    fitted = top_clusters_markdown(frame)
    assert len(fitted) <= INLINE_MARKDOWN
    assert fitted.count("\n") == 1 + 6  # one (the largest) cluster per scenario
    assert all(f"| scenario_{s} | 0 | {long_name} #0 |" in fitted for s in range(6))  # names whole
