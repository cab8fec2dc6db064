"""Ingestion end to end without Dagster: every format, every kind of bad input, duplicates,
idempotency, changed files, late and early interventions, and the accounting."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq

from conftest import query, run_pipeline, write_jsonl
from flywheel.ingest.sync import sync_landing
from flywheel.otlp import export_otlp

DAY = date(2026, 3, 1)


def event(i: int, **kw) -> dict:
    base = {"event_id": f"e{i}", "occurred_at": f"2026-03-01T{10 + i % 10:02d}:00:00Z", "scenario": "refund_request",
            "model": "m1", "prompt_version": "v1", "autonomy_level": "assist", "status": "ok",
            "confidence": 0.5 + (i % 50) / 100, "output_text": f"draft {i}", "latency_ms": 100.0 + i,
            "input_tokens": 10, "output_tokens": 20,
            "tool_calls": [{"name": "lookup", "status": "ok", "arguments": {"i": i}}],
            "decision_path": {"route": "human_review"}, "attributes": {"k": i}}
    base.update(kw)
    return base


def intervention(i: int, event_id: str, **kw) -> dict:
    base = {"intervention_id": f"i{i}", "event_id": event_id, "occurred_at": "2026-03-01T21:00:00Z",
            "action": "accepted", "reviewer_id": "r1", "review_seconds": 12.0}
    base.update(kw)
    return base


def stored_events(settings) -> list[tuple]:
    return query(settings, "SELECT event_id, occurred_at, confidence, tool_calls, decision_path, attributes "
                           "FROM ingest.events ORDER BY event_id")


def balanced(settings) -> bool:
    rows = query(settings, "SELECT bool_and(balanced), count(*) FROM ingest.file_reconciliation")
    return bool(rows[0][0]) and rows[0][1] > 0


def test_jsonl_gzip_csv_parquet_and_otlp_store_the_same_events(settings, tmp_path):
    records = [event(i) for i in range(4)]
    results = {}
    for fmt in ("jsonl", "jsonl.gz", "csv", "parquet", "otlp"):
        landing = settings.landing
        for kind in ("events", "interventions", "otlp"):
            for f in (landing / kind).iterdir():
                f.unlink()
        if fmt == "jsonl":
            write_jsonl(landing / "events" / "a.jsonl", records)
        elif fmt == "jsonl.gz":
            write_jsonl(landing / "events" / "a.jsonl.gz", records, gz=True)
        elif fmt == "csv":
            out = io.StringIO()
            w = csv.DictWriter(out, fieldnames=list(records[0]))
            w.writeheader()
            for r in records:
                w.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()})
            (landing / "events" / "a.csv").write_text(out.getvalue())
        elif fmt == "parquet":
            rows = [{**r, "tool_calls": [{**c, "arguments": json.dumps(c["arguments"])} for c in r["tool_calls"]],
                     "decision_path": json.dumps(r["decision_path"]), "attributes": json.dumps(r["attributes"])}
                    for r in records]
            pq.write_table(pa.Table.from_pylist(rows), landing / "events" / "a.parquet")
        else:
            (landing / "otlp" / "a.json").write_text(json.dumps(export_otlp(records, [])))
        s = settings.__class__(landing=landing, store=tmp_path / f"store-{fmt}", db=tmp_path / f"{fmt}.duckdb")
        run_pipeline(s)
        results[fmt] = [r for r in stored_events(s)]
        assert balanced(s)
    assert len(results["jsonl"]) == 4
    for fmt, rows in results.items():
        if fmt == "otlp":  # OTLP keeps span attributes it cannot map in `attributes`
            rows = [r[:5] for r in rows]
            assert rows == [r[:5] for r in results["jsonl"]], fmt
        else:
            assert rows == results["jsonl"], fmt


def test_every_kind_of_bad_record_is_quarantined_with_its_reason(settings):
    good = [event(1), event(2)]
    bad = [
        b'{"event_id": "x1", "scenario": "caf\xe9"}',                      # not_utf8
        '{"event_id": "x2", "occurred_at": ',                              # invalid_json (truncated)
        '[1, 2, 3]',                                                       # invalid_json (not an object)
        '{"event_id": "x3", "confidence": NaN}',                           # invalid_json (NaN is not JSON)
        json.dumps({k: v for k, v in event(3).items() if k != "model"}),   # missing_field
        json.dumps(event(4, confidence="high")),                           # wrong_type
        json.dumps(event(5, occurred_at="2026-03-01T10:00:00")),           # bad_timestamp
        json.dumps(event(6, latency_ms=-3)),                               # out_of_range
        json.dumps(event(7, status="crashed")),                            # unknown_enum
        json.dumps(event(1, output_text="changed")),                       # conflicting_duplicate
        json.dumps(event(2)),                                              # exact duplicate (not quarantined)
    ]
    write_jsonl(settings.landing / "events" / "a.jsonl", good + bad)
    (settings.landing / "events" / "b.csv").write_text(
        "event_id,occurred_at,scenario,model,autonomy_level,status\n"
        "c1,2026-03-01T10:00:00Z,s,m,assist,ok\n"
        "c2,2026-03-01T10:00:00Z,s,m,assist,ok,EXTRA\n")                  # bad_row (shifted columns)
    (settings.landing / "events" / "c.jsonl.gz").write_bytes(b"this is not gzip")  # bad_file
    (settings.landing / "events" / "d.jsonl").write_bytes(b"")             # zero bytes: nothing to read
    (settings.landing / "events" / "e.xml").write_text("<event/>")         # bad_file: unsupported
    run_pipeline(settings)
    reasons = dict(query(settings, "SELECT reason_code, count(*) FROM ingest.quarantine GROUP BY 1"))
    assert reasons == {"not_utf8": 1, "invalid_json": 3, "missing_field": 1, "wrong_type": 1, "bad_timestamp": 1,
                       "out_of_range": 1, "unknown_enum": 1, "conflicting_duplicate": 1, "bad_row": 1, "bad_file": 2}
    assert query(settings, "SELECT record_id, source_line, kept_line FROM ingest.duplicates") == [("e2", 13, 2)]
    assert [r[0] for r in stored_events(settings)] == ["c1", "e1", "e2"]
    # the first copy of e1 wins; the conflicting one is quarantined with a pointer to it
    conflict = query(settings, "SELECT reason, raw FROM ingest.quarantine WHERE reason_code = 'conflicting_duplicate'")[0]
    assert "events/a.jsonl line 1" in conflict[0] and '"changed"' in conflict[1]
    raw = query(settings, "SELECT raw FROM ingest.quarantine WHERE reason_code = 'bad_timestamp'")[0][0]
    assert '"e5"' in raw  # the raw record is kept
    files = dict(query(settings, "SELECT path, records_read FROM ingest.file_reconciliation"))
    assert files == {"events/a.jsonl": 13, "events/b.csv": 2, "events/c.jsonl.gz": 1, "events/d.jsonl": 0, "events/e.xml": 1}
    assert balanced(settings)


def test_parquet_with_a_different_schema_is_quarantined_row_by_row(settings):
    pq.write_table(pa.table({"id": ["a", "b"], "when": ["x", "y"]}), settings.landing / "events" / "other.parquet")
    (settings.landing / "events" / "corrupt.parquet").write_bytes(b"PAR1 garbage")
    run_pipeline(settings)
    rows = query(settings, "SELECT source_file, source_line, reason_code FROM ingest.quarantine ORDER BY ALL")
    assert rows == [("events/corrupt.parquet", None, "bad_file"),
                    ("events/other.parquet", 1, "missing_field"), ("events/other.parquet", 2, "missing_field")]
    assert balanced(settings)


def test_symlink_out_of_landing_is_refused_and_never_read(settings, tmp_path):
    outside = write_jsonl(tmp_path / "secret.jsonl", [event(1)])
    os.symlink(outside, settings.landing / "events" / "link.jsonl")
    run_pipeline(settings)
    assert stored_events(settings) == []
    reason = query(settings, "SELECT reason_code, reason FROM ingest.quarantine")[0]
    assert reason[0] == "bad_file" and "outside the landing folder" in reason[1]


def test_a_night_of_only_bad_files_tells_the_operator_which_and_why(settings, tmp_path, monkeypatch, capsys):
    """`flywheel run` over a landing folder whose files are all quarantined whole has no day to
    rebuild; it used to print only "nothing to rebuild", as if the folder were empty."""
    from assets.cli import main as cli

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    outside = write_jsonl(tmp_path / "secret.jsonl", [event(1)])
    os.symlink(outside, settings.landing / "events" / "link.jsonl")
    (settings.landing / "events" / "corrupt.parquet").write_bytes(b"PAR1 garbage")
    assert cli(["run", "--quiet", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "nothing to rebuild" in out
    lines = err.splitlines()
    head = next(i for i, ln in enumerate(lines) if "landing file(s) quarantined whole" in ln)
    assert lines[head].startswith("flywheel: 2 landing file(s)")
    named = dict(ln.strip().split(": ", 1) for ln in lines[head + 1:head + 3])
    assert set(named) == {"events/corrupt.parquet", "events/link.jsonl"}
    assert "outside the landing folder" in named["events/link.jsonl"]
    assert named["events/corrupt.parquet"]  # the reader's own words
    # a rerun reads nothing again and says nothing again
    assert cli(["run", "--quiet", "--no-progress"]) == 0
    assert "quarantined whole" not in capsys.readouterr().err
    # the report says the same for the sync alone, and only for files read now
    report = sync_landing(settings)
    assert report.bad_files_warning() is None


def test_the_bad_files_warning_names_a_few_and_counts_the_rest(settings):
    for i in range(7):
        (settings.landing / "events" / f"bad{i}.parquet").write_bytes(b"not parquet")
    message = sync_landing(settings).bad_files_warning(shown=3)
    assert message is not None
    lines = message.splitlines()
    assert lines[0].startswith("flywheel: 7 landing file(s)")
    assert [ln.split(":")[0].strip() for ln in lines[1:4]] == [f"events/bad{i}.parquet" for i in range(3)]
    assert lines[4] == "  ... and 4 more (ingest.quarantine, reason_code 'bad_file')"


def test_rerunning_changes_nothing_and_files_are_read_once(settings):
    write_jsonl(settings.landing / "events" / "a.jsonl", [event(i) for i in range(5)])
    write_jsonl(settings.landing / "interventions" / "a.jsonl", [intervention(1, "e1")])
    first = run_pipeline(settings, [DAY])
    assert [f.status for f in first.files] == ["new", "new"]
    store_files = sorted(p for p in settings.store.rglob("*.parquet") if "_schema" not in p.parts)
    before = {p: p.read_bytes() for p in store_files}
    again = run_pipeline(settings, [DAY])
    assert [f.status for f in again.files] == ["unchanged", "unchanged"]
    after = {p: p.read_bytes() for p in sorted(p for p in settings.store.rglob("*.parquet") if "_schema" not in p.parts)}
    assert before == after
    # touching a file without changing it does not re-read it either
    os.utime(settings.landing / "events" / "a.jsonl", None)
    assert [f.status for f in sync_landing(settings).files] == ["unchanged", "unchanged"]


def test_a_changed_file_is_re_read_and_replaces_its_old_records(settings):
    path = write_jsonl(settings.landing / "events" / "a.jsonl", [event(1), event(2)])
    run_pipeline(settings, [DAY])
    write_jsonl(path, [event(1, output_text="corrected"), event(3)])
    report = run_pipeline(settings, [DAY])
    assert [f.status for f in report.files] == ["changed"]
    assert query(settings, "SELECT event_id, output_text FROM ingest.events ORDER BY 1") == [("e1", "corrected"), ("e3", "draft 3")]
    assert balanced(settings)


def test_the_same_file_delivered_twice_under_another_name_counts_once(settings):
    records = [event(i) for i in range(3)]
    write_jsonl(settings.landing / "events" / "a.jsonl", records)
    write_jsonl(settings.landing / "events" / "a-copy.jsonl", records)
    run_pipeline(settings)
    assert len(stored_events(settings)) == 3
    assert query(settings, "SELECT count(*) FROM ingest.duplicates")[0][0] == 3
    assert balanced(settings)


def test_interventions_before_their_event_arrives_wait_and_then_join(settings):
    write_jsonl(settings.landing / "interventions" / "early.jsonl",
                [intervention(1, "e1"), intervention(2, "e1", action="edited", final_text="better",
                                                      occurred_at="2026-03-03T09:00:00Z")])
    run_pipeline(settings, [DAY])
    assert query(settings, "SELECT intervention_id FROM ingest.pending_interventions ORDER BY 1") == [("i1",), ("i2",)]
    assert balanced(settings)
    write_jsonl(settings.landing / "events" / "late.jsonl", [event(1)])
    run_pipeline(settings, [DAY])
    assert query(settings, "SELECT intervention_id, event_date FROM ingest.interventions ORDER BY 1") == [("i1", DAY), ("i2", DAY)]
    assert query(settings, "SELECT count(*) FROM ingest.pending_interventions")[0][0] == 0
    assert balanced(settings)


def test_an_intervention_stamped_before_its_event_is_quarantined(settings):
    write_jsonl(settings.landing / "events" / "a.jsonl", [event(1, occurred_at="2026-03-01T12:00:00Z")])
    write_jsonl(settings.landing / "interventions" / "a.jsonl", [
        intervention(1, "e1", occurred_at="2026-03-01T11:00:00Z"),      # an hour before: quarantined
        intervention(2, "e1", occurred_at="2026-03-01T11:58:00Z"),      # within clock skew: kept
    ])
    run_pipeline(settings)
    assert query(settings, "SELECT intervention_id FROM ingest.interventions") == [("i2",)]
    assert query(settings, "SELECT reason_code FROM ingest.quarantine") == [("intervention_before_event",)]
    assert balanced(settings)


def test_event_day_is_the_utc_date(settings):
    write_jsonl(settings.landing / "events" / "a.jsonl", [event(1, occurred_at="2026-03-01T23:30:00-02:00")])
    report = run_pipeline(settings)
    assert report.event_days == {date(2026, 3, 2)}
    assert query(settings, "SELECT event_date FROM ingest.events") == [(date(2026, 3, 2),)]


def test_a_day_built_from_several_pieces_joins_each_row_back_to_its_own_piece(settings):
    """build_events ranks the staged pieces' key columns and reads the full rows back from the pieces
    by (piece, row in piece): rows at the same place in different pieces must not be mixed up."""
    from flywheel.ingest.partition import build_events
    from flywheel.store import Layout

    write_jsonl(settings.landing / "events" / "a.jsonl", [event(1), event(2), event(3)])
    write_jsonl(settings.landing / "events" / "b.jsonl", [event(4), event(2, output_text="b2"), event(5)])
    write_jsonl(settings.landing / "events" / "c.jsonl", [event(6), event(7), event(3, output_text="c3")])
    sync_landing(settings)
    result = build_events(settings, DAY)
    assert (result.staged, result.stored, result.duplicates, result.quarantined) == (9, 7, 0, 2)
    layout = Layout(settings.store)
    stored = pq.read_table(layout.table("events", DAY))
    assert sorted(zip(stored["event_id"].to_pylist(), stored["output_text"].to_pylist(),
                      stored["source_file"].to_pylist())) == [
        (f"e{i}", f"draft {i}", "events/" + ("a" if i <= 3 else "b" if i <= 5 else "c") + ".jsonl")
        for i in range(1, 8)]
    # stored in time order, then by id
    assert stored["occurred_at"].to_pylist() == sorted(stored["occurred_at"].to_pylist())
    conflicts = pq.read_table(layout.table("quarantine/events", DAY)).to_pylist()
    assert [(c["source_file"], c["source_line"], json.loads(c["raw"])["output_text"]) for c in conflicts] == [
        ("events/b.jsonl", 2, "b2"), ("events/c.jsonl", 3, "c3")]
    assert "events/a.jsonl line 2" in conflicts[0]["reason"] and "events/a.jsonl line 3" in conflicts[1]["reason"]
