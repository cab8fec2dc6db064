"""Property-based bad input: generated and mutated records and files of every kind of bad input
never crash ingestion, every rejected record gets a clear reason, and the accounting holds for
every file (records read = stored + exact duplicates + quarantined + pending)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from conftest import query, run_pipeline, write_jsonl
from flywheel.config import Settings

FIELDS = ["event_id", "occurred_at", "scenario", "model", "prompt_version", "autonomy_level", "status",
          "confidence", "latency_ms", "input_tokens", "output_tokens", "output_text"]


def _event(i: int, when: datetime) -> dict:
    return {"event_id": f"e{i}", "occurred_at": when.isoformat().replace("+00:00", "Z"), "scenario": "s",
            "model": "m", "prompt_version": "v1", "autonomy_level": "assist", "status": "ok",
            "confidence": 0.5, "latency_ms": 10.0, "input_tokens": 3, "output_tokens": 4, "output_text": "hi"}


MUTATIONS = [
    "none", "truncate", "wrong_type", "nan", "infinity", "no_offset", "dst_offset", "unknown_enum",
    "missing", "negative", "deep", "not_utf8", "duplicate_same", "duplicate_different", "array", "big",
    "extra_field", "empty_string", "bool_number", "wrong_type_text", "huge_integer",
]


def _mutate(record: dict, mutation: str, draw) -> bytes:
    r = dict(record)
    if mutation == "wrong_type":
        r[draw(st.sampled_from(["confidence", "input_tokens", "latency_ms"]))] = draw(st.sampled_from(["high", "1.5k", [1]]))
    elif mutation == "wrong_type_text":  # a number or an object where text belongs
        r[draw(st.sampled_from(["output_text", "scenario", "model", "trace_id"]))] = draw(st.sampled_from([5, 1.5, {"a": 1}, [1]]))
    elif mutation == "huge_integer":  # beyond the stored 64-bit integer
        r[draw(st.sampled_from(["input_tokens", "output_tokens"]))] = draw(st.sampled_from([2**63, 2**64 - 1, 2**64, 10**30]))
    elif mutation == "nan":
        return json.dumps({**r, "confidence": float("nan")}).encode()
    elif mutation == "infinity":
        return json.dumps({**r, "latency_ms": float("inf")}).encode()
    elif mutation == "no_offset":
        r["occurred_at"] = r["occurred_at"].rstrip("Z")
    elif mutation == "dst_offset":  # the same instant written across a DST change
        t = datetime.fromisoformat(r["occurred_at"].replace("Z", "+00:00"))
        r["occurred_at"] = t.astimezone(timezone(timedelta(hours=draw(st.sampled_from([-5, -4, 1, 2]))))).isoformat()
    elif mutation == "unknown_enum":
        r[draw(st.sampled_from(["status", "autonomy_level"]))] = draw(st.text(min_size=1, max_size=8))
    elif mutation == "missing":
        r.pop(draw(st.sampled_from(["event_id", "scenario", "model", "status", "occurred_at"])))
    elif mutation == "negative":
        r[draw(st.sampled_from(["latency_ms", "input_tokens"]))] = -draw(st.integers(1, 10**6))
    elif mutation == "deep":  # written as text: Python's own encoder would hit its recursion limit
        depth = draw(st.integers(10, 3000))
        return json.dumps({**r, "attributes": {"x": 0}}).replace('"x": 0', '"x": ' + "[" * depth + "1" + "]" * depth).encode()
    elif mutation == "not_utf8":
        return json.dumps(r).encode().replace(b'"hi"', b'"h\xff\xfei"')
    elif mutation == "truncate":
        text = json.dumps(r).encode()
        return text[: draw(st.integers(1, len(text) - 1))]
    elif mutation == "array":
        return json.dumps([r]).encode()
    elif mutation == "big":
        r["output_text"] = "x" * draw(st.integers(10_000, 200_000))
    elif mutation == "extra_field":
        r[draw(st.text(min_size=1, max_size=10))] = draw(st.integers())
    elif mutation == "empty_string":
        r["scenario"] = ""
    elif mutation == "bool_number":
        r["confidence"] = True
    return json.dumps(r).encode()


@st.composite
def landing_files(draw):
    base = datetime(2026, 3, 28, 23, 30, tzinfo=timezone.utc)  # near a day boundary and the EU DST change
    files = []
    n_files = draw(st.integers(1, 4))
    counter = 0
    for f in range(n_files):
        fmt = draw(st.sampled_from(["jsonl", "jsonl.gz", "csv", "not_gzip", "empty", "parquet_other_schema"]))
        lines = []
        for _ in range(draw(st.integers(0, 12))):
            counter += 1
            record = _event(counter, base + timedelta(minutes=draw(st.integers(-120, 120))))
            mutation = draw(st.sampled_from(MUTATIONS))
            if mutation.startswith("duplicate") and lines:
                try:
                    prev = json.loads(lines[-1])
                except (ValueError, UnicodeDecodeError, RecursionError):
                    prev = None
                if isinstance(prev, dict):
                    if mutation == "duplicate_different":
                        prev["output_text"] = "changed"
                    lines.append(json.dumps(prev).encode())
                    continue
            lines.append(_mutate(record, mutation, draw))
        files.append((f, fmt, lines))
    return files


def _write(folder: Path, index: int, fmt: str, lines: list[bytes]) -> None:
    if fmt == "jsonl":
        write_jsonl(folder / f"f{index}.jsonl", lines)
    elif fmt == "jsonl.gz":
        write_jsonl(folder / f"f{index}.jsonl.gz", lines, gz=True)
    elif fmt == "not_gzip":
        (folder / f"f{index}.jsonl.gz").write_bytes(b"\n".join(lines) or b"plain")
    elif fmt == "empty":
        (folder / f"f{index}.jsonl").write_bytes(b"")
    elif fmt == "parquet_other_schema":
        pq.write_table(pa.table({"id": [str(i) for i in range(len(lines))], "blob": [line[:50].decode("utf-8", "replace") for line in lines]}),
                       folder / f"f{index}.parquet")
    else:  # csv: one row per record, shifted when the record has more or fewer fields
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(FIELDS)
        for line in lines:
            try:
                obj = json.loads(line)
            except (ValueError, UnicodeDecodeError, RecursionError):
                out.write(line.decode("utf-8", "replace").replace("\n", " ") + "\n")
                continue
            if isinstance(obj, dict):
                w.writerow([obj.get(k, "") for k in FIELDS] + (["EXTRA"] if len(obj) > len(FIELDS) + 1 else []))
        (folder / f"f{index}.csv").write_text(out.getvalue())


@hsettings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.data_too_large])
@given(files=landing_files())
def test_no_crash_clear_reasons_and_counts_reconcile(tmp_path_factory, files):
    root = tmp_path_factory.mktemp("bad")
    s = Settings(landing=root / "landing", store=root / "store", db=root / "db.duckdb")
    (s.landing / "events").mkdir(parents=True)
    for index, fmt, lines in files:
        _write(s.landing / "events", index, fmt, lines)
    run_pipeline(s)
    rows = query(s, "SELECT path, records_read, stored, duplicates, quarantined, pending, balanced FROM ingest.file_reconciliation")
    assert len(rows) == len(files)
    for path, read, stored, dups, quarantined, pending, balanced in rows:
        assert balanced and read == stored + dups + quarantined + pending, path
        assert pending == 0  # every day was built
    reasons = query(s, "SELECT reason_code, reason FROM ingest.quarantine")
    assert all(code and text for code, text in reasons)
    shutil.rmtree(root)


def test_a_10_mb_text_field_is_stored_whole(settings):
    record = _event(1, datetime(2026, 3, 1, 10, tzinfo=timezone.utc))
    record["output_text"] = "y" * (10 * 1024 * 1024)
    write_jsonl(settings.landing / "events" / "big.jsonl", [record])
    run_pipeline(settings)
    assert query(settings, "SELECT length(output_text) FROM ingest.events") == [(10 * 1024 * 1024,)]


def test_a_record_over_the_size_limit_is_quarantined_not_read(settings, monkeypatch):
    import flywheel.ingest.readers as readers

    monkeypatch.setattr(readers, "MAX_RECORD_BYTES", 1000)
    record = _event(1, datetime(2026, 3, 1, 10, tzinfo=timezone.utc))
    record["output_text"] = "z" * 5000
    write_jsonl(settings.landing / "events" / "big.jsonl", [record, _event(2, datetime(2026, 3, 1, 11, tzinfo=timezone.utc))])
    run_pipeline(settings)
    assert query(settings, "SELECT reason_code FROM ingest.quarantine") == [("record_too_large",)]
    assert query(settings, "SELECT event_id FROM ingest.events") == [("e2",)]


def test_a_number_in_a_text_field_or_an_integer_beyond_64_bits_is_quarantined_alone(settings):
    """Each crashed the whole sync (a rejected record's cell reached the Arrow table; a valid-looking
    2**63 did not fit int64): now each is one quarantined record, and the file's other records stay."""
    when = datetime(2026, 3, 1, 10, tzinfo=timezone.utc)
    records = [{**_event(1, when), "output_text": 5}, {**_event(2, when), "input_tokens": 2**63},
               {**_event(3, when), "scenario": {"a": 1}}, {**_event(4, when), "output_tokens": 2**63 - 1}]
    write_jsonl(settings.landing / "events" / "types.jsonl", records)
    run_pipeline(settings)
    assert query(settings, "SELECT source_line, reason_code, reason FROM ingest.quarantine ORDER BY 1") == [
        (1, "wrong_type", "output_text must be a string, got int"),
        (2, "out_of_range", f"input_tokens is {2**63}, beyond a 64-bit integer"),
        (3, "wrong_type", "scenario must be a string, got dict")]
    assert query(settings, "SELECT event_id, output_tokens FROM ingest.events") == [("e4", 2**63 - 1)]


def test_a_dst_change_keeps_the_utc_day(settings):
    # 2026-03-29 01:30 UTC is 03:30 CEST just after the EU change; written with both offsets
    a = {**_event(1, datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc)), "occurred_at": "2026-03-29T03:30:00+02:00"}
    b = {**_event(2, datetime(2026, 3, 28, 23, 30, tzinfo=timezone.utc)), "occurred_at": "2026-03-29T00:30:00+01:00"}
    write_jsonl(settings.landing / "events" / "dst.jsonl", [a, b])
    report = run_pipeline(settings)
    assert report.event_days == {date(2026, 3, 29), date(2026, 3, 28)}
    assert query(settings, "SELECT event_id, event_date FROM ingest.events ORDER BY 1") == [
        ("e1", date(2026, 3, 29)), ("e2", date(2026, 3, 28))]
