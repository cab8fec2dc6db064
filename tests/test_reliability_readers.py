"""Landing readers under hostile input (issue 16, items 1, 3, 5, 7): a gzip bomb and a line without
end are read in bounded memory (peak RSS of a child process measured), quarantined raw records keep
reviewer ids hashed, a named pipe in the landing folder does not hang the landing sensor, a file
that vanishes mid-sync is skipped and read when it comes back, and a renamed file is not read twice."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import zlib
from pathlib import Path

import pytest

from conftest import query, run_pipeline, write_jsonl
from flywheel.config import Settings
from flywheel.ingest import sync as sync_module
from flywheel.ingest.peek import peek_days
from flywheel.ingest.sync import sync_landing
from flywheel.otlp import export_otlp
from flywheel.privacy import pseudonymise
from test_ingest import balanced, event, intervention

MiB = 1024 * 1024
RSS_BOUND = 512 * MiB  # "well under 1 GiB"; a bare interpreter with pyarrow and polars is ~200 MiB

_CHILD = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path

    def main():
        from flywheel.config import Settings
        from flywheel.ingest.peek import peek_days
        from flywheel.ingest.sync import discover, sync_landing

        root = Path(sys.argv[1])
        settings = Settings.from_env(landing=root / "landing", store=root / "store", db=root / "db.duckdb")
        days = sorted(str(d) for kind, _, path in discover(settings.landing) for d in peek_days(path, kind))
        report = sync_landing(settings)
        # VmHWM, not RUSAGE_SELF: Linux keeps ru_maxrss across fork and exec, so a child of a large
        # pytest process reports the parent's peak (1.7 GiB late in a full run)
        hwm = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("VmHWM:"))
        rss = max(hwm, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * 1024  # Linux: KiB
        print(json.dumps({"rss": rss, "days": days,
                          "files": [[f.path, f.status, f.read, f.quarantined] for f in report.files]}))

    if __name__ == "__main__":  # sync_landing may start spawned worker processes
        main()
""")


def _peek_and_sync_in_child(root: Path, env: dict[str, str] | None = None) -> dict:
    """Run the landing sensor's peek and a sync over `root/landing` in a fresh process; its peak RSS
    (and its worker processes') and what it read."""
    script = root / "child.py"
    script.write_text(_CHILD)
    out = subprocess.run([sys.executable, str(script), str(root)], capture_output=True, text=True, timeout=900,
                         env={**os.environ, "FLYWHEEL_HASH_KEY": "readers-test", **(env or {})},
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"peak RSS {result['rss'] / MiB:.0f} MiB: {result['files']}")
    return result


def _quarantine_rows(store: Path) -> list[dict]:
    import pyarrow.parquet as pq

    rows: list[dict] = []
    for piece in sorted((store / "staging" / "quarantine").glob("*.parquet")):
        rows.extend(pq.read_table(piece).to_pylist())
    return rows


def test_a_gzip_bomb_is_refused_as_a_bad_file_in_bounded_memory(tmp_path):
    # 1 GiB of zeros gzips to ~1 MB (ratio ~1,000): refused once it has expanded past the ratio.
    folder = tmp_path / "landing" / "events"
    folder.mkdir(parents=True)
    good = (json.dumps(event(1)) + "\n").encode()
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(folder / "bomb.jsonl.gz", "wb") as fh:
        fh.write(comp.compress(good))
        zeros = bytes(16 * MiB)
        for _ in range(64):
            fh.write(comp.compress(zeros))
        fh.write(comp.flush())
    assert (folder / "bomb.jsonl.gz").stat().st_size < 4 * MiB
    result = _peek_and_sync_in_child(tmp_path)
    assert result["rss"] < RSS_BOUND
    assert result["files"] == [["events/bomb.jsonl.gz", "new", 1, 1]]
    (row,) = _quarantine_rows(tmp_path / "store")
    assert row["reason_code"] == "bad_file" and "compression bomb" in row["reason"], row


def test_a_decompressed_size_over_the_limit_is_refused(settings, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_MAX_DECOMPRESSED_BYTES", "1MB")
    write_jsonl(settings.landing / "events" / "big.jsonl.gz", [event(i, output_text="x" * 300_000) for i in range(5)],
                gz=True)
    write_jsonl(settings.landing / "events" / "small.jsonl.gz", [event(9)], gz=True)
    run_pipeline(Settings.from_env())
    assert query(settings, "SELECT source_file, reason_code, reason FROM ingest.quarantine") == [
        ("events/big.jsonl.gz", "bad_file",
         "big.jsonl.gz decompresses to more than 1000000 bytes (FLYWHEEL_MAX_DECOMPRESSED_BYTES); refused")]
    assert query(settings, "SELECT event_id FROM ingest.events") == [("e9",)]


def test_limits_are_checked_settings(monkeypatch):
    monkeypatch.delenv("FLYWHEEL_MAX_DECOMPRESSED_BYTES", raising=False)
    monkeypatch.setenv("FLYWHEEL_MAX_COMPRESSION_RATIO", "0")
    with pytest.raises(ValueError, match="FLYWHEEL_MAX_COMPRESSION_RATIO must be a number greater than 1"):
        Settings.from_env()
    monkeypatch.setenv("FLYWHEEL_MAX_COMPRESSION_RATIO", "250")
    assert Settings.from_env().max_compression_ratio == 250
    monkeypatch.setenv("FLYWHEEL_MAX_DECOMPRESSED_BYTES", "0GiB")
    with pytest.raises(ValueError, match="FLYWHEEL_MAX_DECOMPRESSED_BYTES must be more than 0 bytes"):
        Settings.from_env()
    monkeypatch.delenv("FLYWHEEL_MAX_COMPRESSION_RATIO")
    monkeypatch.delenv("FLYWHEEL_MAX_DECOMPRESSED_BYTES")
    assert (Settings.from_env().max_decompressed_bytes, Settings.from_env().max_compression_ratio) == (16 * 1024**3, 100)


def test_a_long_line_without_newline_is_quarantined_after_reading_at_most_the_limit(tmp_path):
    # A valid record, then 400 MB of one line with no newline at all (JSON Lines), and a CSV whose
    # second line is 100 MB long.
    folder = tmp_path / "landing" / "events"
    folder.mkdir(parents=True)
    with open(folder / "long.jsonl", "wb") as fh:
        fh.write((json.dumps(event(1)) + "\n").encode())
        block = b"x" * (16 * MiB)
        for _ in range(25):
            fh.write(block)
    header = "event_id,occurred_at,scenario,model,autonomy_level,status,output_text\n"
    with open(folder / "long.csv", "wb") as fh:
        fh.write(header.encode() + b"e2,2026-03-01T10:00:00Z,s,m,assist,ok,")
        for _ in range(6):
            fh.write(block)
        fh.write(b"\ne3,2026-03-01T10:00:00Z,s,m,assist,ok,fine\n")
    result = _peek_and_sync_in_child(tmp_path)
    assert result["rss"] < RSS_BOUND
    assert result["days"] == ["2026-03-01"]
    assert sorted(result["files"]) == [["events/long.csv", "new", 1, 1], ["events/long.jsonl", "new", 2, 1]]
    rows = {r["source_file"]: r for r in _quarantine_rows(tmp_path / "store")}
    line = rows["events/long.jsonl"]
    assert (line["source_line"], line["reason_code"]) == (2, "record_too_large")
    assert line["raw"] == "x" * 4096
    assert rows["events/long.csv"]["reason_code"] == "bad_file"
    assert "line 2 is longer than" in rows["events/long.csv"]["reason"]


def test_quarantined_raw_records_keep_reviewer_ids_hashed(settings, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_HASH_KEY", "k1")
    secret = "alice@corp.example"
    hashed = pseudonymise(secret, b"k1")
    write_jsonl(settings.landing / "events" / "e.jsonl", [event(1)])
    write_jsonl(settings.landing / "interventions" / "bad.jsonl", [
        intervention(1, "e1", action="approved", reviewer_id=secret),            # unknown enum
        '{"intervention_id": "i2", "reviewer_id": "alice@corp.example", "act',   # truncated
        intervention(3, "e1", reviewer_id=secret),                                 # stored
    ])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["intervention_id", "event_id", "occurred_at", "action", "reviewer_id"])
    writer.writerow(["i4", "e1", "2026-03-01T21:00:00Z", "nope", secret])       # unknown enum
    writer.writerow(["i5", "e1", "2026-03-01T21:00:00Z", "accepted", secret, "extra"])  # bad_row
    (settings.landing / "interventions" / "bad.csv").write_text(out.getvalue())
    otlp = export_otlp([event(7)], [intervention(6, "e7", action="approved", reviewer_id=secret)])
    (settings.landing / "otlp" / "bad.json").write_text(json.dumps(otlp))
    run_pipeline(settings)
    raws = query(settings, "SELECT source_file, source_line, raw FROM ingest.quarantine ORDER BY 1, 2")
    assert [r[:2] for r in raws] == [("interventions/bad.csv", 2), ("interventions/bad.csv", 3),
                                     ("interventions/bad.jsonl", 1), ("interventions/bad.jsonl", 2),
                                     ("otlp/bad.json", 1)]
    for _, _, raw in raws:
        assert "alice" not in raw and hashed in raw, raw
    assert query(settings, "SELECT reviewer_id FROM ingest.interventions") == [(hashed,)]
    assert json.loads(raws[2][2])["reviewer_id"] == hashed


def test_a_named_pipe_in_the_landing_folder_does_not_hang_the_peek_or_the_sensor(settings):
    import dagster as dg

    from assets.jobs import RANGE_START
    from assets.resources import FlywheelResource
    from assets.sensors import landing_sensor

    write_jsonl(settings.landing / "events" / "a.jsonl", [event(1)])
    fifo = settings.landing / "events" / "pipe.jsonl"
    os.mkfifo(fifo)
    got: dict = {}

    def look() -> None:
        got["peek"] = peek_days(fifo, "events")
        with dg.instance_for_test() as instance:
            got["sensor"] = landing_sensor(dg.build_sensor_context(instance=instance, resources={"flywheel": FlywheelResource()}))

    worker = threading.Thread(target=look, daemon=True)
    worker.start()
    worker.join(60)  # a guard against a hang, not a timing assertion
    if worker.is_alive():  # release the blocked reader before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(10)
    assert got.get("peek") == set()
    result = got["sensor"]
    assert [r.tags[RANGE_START] for r in result.run_requests] == ["2026-03-01"]
    assert "pipe.jsonl" not in result.cursor  # looked at again next time, still skipped
    report = sync_landing(settings)  # the run refuses it
    assert {f.path: f.status for f in report.files} == {"events/a.jsonl": "new", "events/pipe.jsonl": "refused"}


def test_a_file_that_vanishes_after_discovery_is_skipped_and_read_when_it_comes_back(settings, monkeypatch, caplog):
    a = write_jsonl(settings.landing / "events" / "a.jsonl", [event(1)])
    b = write_jsonl(settings.landing / "events" / "b.jsonl", [event(2)])
    saved = b.read_bytes()
    original = sync_module.discover

    def discover_then_delete(landing):
        found = original(landing)
        b.unlink()
        return found

    monkeypatch.setattr(sync_module, "discover", discover_then_delete)
    report = run_pipeline(settings)
    assert {f.path: f.status for f in report.files} == {"events/a.jsonl": "new", "events/b.jsonl": "vanished"}
    assert "events/b.jsonl vanished" in caplog.text
    assert query(settings, "SELECT event_id FROM ingest.events") == [("e1",)]
    monkeypatch.setattr(sync_module, "discover", original)
    b.write_bytes(saved)
    report = run_pipeline(settings)
    assert {f.path: f.status for f in report.files} == {"events/a.jsonl": "unchanged", "events/b.jsonl": "new"}
    assert query(settings, "SELECT event_id FROM ingest.events ORDER BY 1") == [("e1",), ("e2",)]
    assert balanced(settings) and a.exists()


def test_a_changed_file_that_vanishes_before_it_is_read_keeps_its_old_records(settings, monkeypatch):
    a = write_jsonl(settings.landing / "events" / "a.jsonl", [event(1), event(2)])
    run_pipeline(settings)
    write_jsonl(a, [event(1, output_text="corrected"), event(3)])
    original = sync_module._sha256

    def digest_then_delete(path):
        digest = original(path)
        path.unlink()
        return digest

    monkeypatch.setattr(sync_module, "_sha256", digest_then_delete)
    report = run_pipeline(settings)
    assert [f.status for f in report.files] == ["vanished"]
    # deleted files' records stay stored (docs/contracts.md)
    assert query(settings, "SELECT event_id, output_text FROM ingest.events ORDER BY 1") == [
        ("e1", "draft 1"), ("e2", "draft 2")]
    assert balanced(settings)


def test_a_renamed_file_is_not_read_or_quarantined_twice(settings):
    path = write_jsonl(settings.landing / "events" / "a.jsonl", [event(1), "{truncated", event(2), "[1]"])
    run_pipeline(settings)
    before = query(settings, "SELECT count(*) FROM ingest.quarantine")[0][0]
    assert before == 2
    path.rename(settings.landing / "events" / "renamed.jsonl")
    report = run_pipeline(settings)
    assert [(f.path, f.status) for f in report.files] == [("events/renamed.jsonl", "renamed")]
    assert query(settings, "SELECT count(*) FROM ingest.quarantine")[0][0] == 2
    assert query(settings, "SELECT count(*) FROM ingest.duplicates")[0][0] == 0
    assert query(settings, "SELECT count(*) FROM ingest.events")[0][0] == 2
    assert balanced(settings)
    # a later change to the renamed file is read as any change is
    write_jsonl(settings.landing / "events" / "renamed.jsonl", [event(3)])
    report = run_pipeline(settings)
    assert [f.status for f in report.files] == ["changed"]
    assert query(settings, "SELECT count(*) FROM ingest.events")[0][0] == 3


def test_an_otlp_file_over_the_document_limit_is_refused_unparsed(settings, monkeypatch):
    import gzip

    import flywheel.ingest.readers as readers

    monkeypatch.setattr(readers, "MAX_DOCUMENT_BYTES", 2000)
    small = json.dumps(export_otlp([event(1)], [])).encode()
    big = json.dumps(export_otlp([event(i) for i in range(2, 12)], [])).encode()
    assert len(small) < 2000 < len(big)
    (settings.landing / "otlp" / "small.json").write_bytes(small)
    (settings.landing / "otlp" / "big.json.gz").write_bytes(gzip.compress(big))
    run_pipeline(settings)
    assert query(settings, "SELECT source_file, reason_code, reason FROM ingest.quarantine") == [
        ("otlp/big.json.gz", "bad_file", "big.json.gz is parsed whole and may hold at most 2000 bytes; refused")]
    assert query(settings, "SELECT event_id FROM ingest.events") == [("e1",)]


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, mtime=0)


_GOOD = b'{"a": 1}\n' * 3000
_STREAMS = {
    "whole": _gzip(_GOOD), "two members": _gzip(_GOOD) + _gzip(b"x\n"), "zero padding": _gzip(_GOOD) + b"\0" * 7,
    "trailing garbage": _gzip(_GOOD) + b"garbage", "truncated": _gzip(_GOOD)[:-12],
    "bad crc": _gzip(_GOOD)[:-8] + b"\0\0\0\0" + _gzip(_GOOD)[-4:], "bad length": _gzip(_GOOD)[:-4] + b"\1\0\0\0",
    "header only": _gzip(_GOOD)[:5], "not gzip": b"plain text\n", "empty": b"", "second member cut": _gzip(_GOOD) + b"\x1f\x8b",
    "corrupt deflate": _gzip(_GOOD)[:12] + bytes(b ^ 0xFF for b in _gzip(_GOOD)[12:20]) + _gzip(_GOOD)[20:],
}


@pytest.mark.parametrize("name", sorted(_STREAMS))
def test_streamed_gzip_reads_what_the_gzip_module_reads(tmp_path, name):
    """The sync's streaming decompressor (ISA-L) accepts exactly the streams the gzip module accepts,
    with the same bytes, and refuses the others with an error the sync words as a bad file."""
    import gzip

    from flywheel.ingest.readers import decompressed_blocks

    path = tmp_path / "f.jsonl.gz"
    path.write_bytes(_STREAMS[name])
    try:
        expected: bytes | None = gzip.decompress(_STREAMS[name])
    except (OSError, EOFError, zlib.error):
        expected = None
    try:
        got: bytes | None = b"".join(decompressed_blocks(path, size=4096))
    except (OSError, EOFError, zlib.error):
        got = None
    assert got == expected
    assert (expected is None) == (name not in ("whole", "two members", "zero padding", "empty"))
