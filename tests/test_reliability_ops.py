"""What an operator broke around the pipeline rather than in its data (issue 16, items 2, 6 and 8):
a full disk tearing an approvals line, an analyst's read-write connection and own tables, and
configuration that used to pass silently or end in a traceback. Each test failed on the code
before its fix."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from flywheel.config import Settings
from flywheel.signals.ledger import append_ledger, ledger_path, read_ledger


def _entry(i: int, day: str = "2026-03-01") -> dict:
    return {"decision_id": f"d{i}", "verdict": "approved", "by": "ana", "note": "", "kind": "autonomy",
            "scenario": f"s{i}", "level": "gated", "previous_level": "assist", "day": day}


class _HalfFullDisk:
    """An os.write that writes half of what it is given to the ledger, then raises ENOSPC."""

    def __init__(self, target: Path):
        self.target = str(target.resolve())
        self.real_write = os.write

    def __call__(self, fd: int, data: bytes) -> int:
        if os.readlink(f"/proc/self/fd/{fd}") != self.target:
            return self.real_write(fd, data)
        self.real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_verdict_torn_by_a_full_disk_is_not_recorded_and_the_ledger_still_reads(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        append_ledger(settings, _entry(i))
    path = ledger_path(settings)
    before = path.read_bytes()
    monkeypatch.setattr(os, "write", _HalfFullDisk(path))
    with pytest.raises(OSError, match="NOT recorded"):
        append_ledger(settings, _entry(3))
    monkeypatch.undo()
    # space is back: the three verdicts read, the failed one is not among them, the file is as before
    assert [e["decision_id"] for e in read_ledger(settings)] == ["d0", "d1", "d2"]
    assert path.read_bytes() == before
    append_ledger(settings, _entry(4))
    assert [e["decision_id"] for e in read_ledger(settings)] == ["d0", "d1", "d2", "d4"]


def test_a_torn_tail_left_by_a_killed_writer_is_set_aside_with_a_message(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(2):
        append_ledger(settings, _entry(i))
    path = ledger_path(settings)
    line = json.dumps(_entry(2), sort_keys=True)
    torn = line[: len(line) // 2]
    with open(path, "a", encoding="utf-8") as fh:  # what a writer killed mid-line leaves
        fh.write(torn)
    with caplog.at_level("WARNING"):
        entries = read_ledger(settings)
    assert [e["decision_id"] for e in entries] == ["d0", "d1"]
    aside = sorted(path.parent.glob("approvals.torn-*.jsonl"))
    assert len(aside) == 1 and aside[0].read_text() == torn + "\n"  # kept, not lost
    assert str(aside[0]) in caplog.text and "not recorded" in caplog.text
    assert path.read_text().endswith("\n") and len(path.read_text().splitlines()) == 2
    # appending after a torn tail starts a line of its own
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(torn)
    append_ledger(settings, _entry(3))
    assert [e["decision_id"] for e in read_ledger(settings)] == ["d0", "d1", "d3"]
    assert len(sorted(path.parent.glob("approvals.torn-*.jsonl"))) == 2


def test_a_bad_line_inside_the_ledger_is_named_with_its_file_and_line(settings: Settings) -> None:
    append_ledger(settings, _entry(0))
    path = ledger_path(settings)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"decision_id": "d1", "verdict"\n')
    append_ledger(settings, _entry(2))
    with pytest.raises(ValueError, match=rf"{path}.*line 2"):
        read_ledger(settings)


def test_the_analysts_approvals_view_reads_after_a_torn_tail(settings: Settings) -> None:
    import duckdb

    from flywheel.catalog import build_catalog

    append_ledger(settings, _entry(0))
    with open(ledger_path(settings), "a", encoding="utf-8") as fh:
        fh.write('{"decision_id": "d1", "verd')
    build_catalog(settings)
    con = duckdb.connect(str(settings.db), read_only=True)
    con.execute("SET VARIABLE flywheel_store = ?", [str(settings.store)])
    try:
        assert con.sql("SELECT decision_id FROM signals.approvals").fetchall() == [("d0",)]
    finally:
        con.close()


def _one_day(settings: Settings) -> None:
    from conftest import run_pipeline, write_jsonl

    write_jsonl(settings.landing / "events" / "e.jsonl",
                [{"event_id": f"e{i}", "occurred_at": "2026-03-01T10:00:00Z", "scenario": "s", "model": "m",
                  "prompt_version": "v1", "autonomy_level": "assist", "status": "ok", "confidence": 0.9,
                  "output_text": "draft", "input_text": "question"} for i in range(3)])
    run_pipeline(settings)


@pytest.mark.parametrize("query", [
    "COPY (SELECT 1) TO '{outside}'",
    "COPY (SELECT 1) TO '{inside}'",
    "SELECT 1; COPY (SELECT 1) TO '{inside}'",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '{inside}'",
    "EXPORT DATABASE '{outside}'",
])
def test_flywheel_sql_writes_no_file(settings: Settings, tmp_path: Path, query: str,
                                     capsys: pytest.CaptureFixture) -> None:
    from assets.cli import main

    _one_day(settings)
    outside, inside = tmp_path / "out.csv", settings.store / "evil.csv"
    assert main(["sql", query.format(outside=outside, inside=inside)]) == 2
    assert "read-only" in capsys.readouterr().err
    assert not outside.exists() and not inside.exists()


def test_flywheel_sql_reads_no_file_outside_the_store_but_the_views_still_read_it(
        settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from assets.cli import main

    _one_day(settings)
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t")
    assert main(["sql", f"SELECT content FROM read_text('{secret}')"]) == 2
    assert main(["sql", "SELECT * FROM glob('/etc/*')"]) == 2
    captured = capsys.readouterr()
    assert "s3cr3t" not in captured.out and "Permission" in captured.err
    assert main(["sql", "SELECT count(*) AS n FROM ingest.events", "--format", "csv"]) == 0
    assert capsys.readouterr().out.split() == ["n", "3"]


def test_every_cookbook_query_runs_through_flywheel_sql(sample_with_changes) -> None:
    """The cookbook says to run its queries with `flywheel sql`: each does, under its sandbox."""
    import re

    from flywheel.analyst import run_query

    settings, _, _ = sample_with_changes
    cookbook = (Path(__file__).resolve().parents[1] / "docs" / "cookbook.md").read_text()
    queries = re.findall(r"```sql\n(.*?)```", cookbook, re.S)
    assert len(queries) >= 10
    for sql in queries:
        _, rows, _ = run_query(settings, sql)
        assert rows, sql


_HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])  # read-write, as the DuckDB CLI opens a file by default
con.execute("CREATE TABLE IF NOT EXISTS main.my_notes AS SELECT 42 AS answer")
print("holding", flush=True)
sys.stdin.read()
"""


def test_an_analyst_holding_the_database_read_write_never_fails_the_night(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys
    from dataclasses import replace
    from datetime import date

    import duckdb

    from assets.runner import run_days
    from conftest import write_jsonl

    settings = replace(settings, publish=tmp_path / "publish")
    monkeypatch.setenv("FLYWHEEL_PUBLISH", str(settings.publish))
    write_jsonl(settings.landing / "events" / "e.jsonl",
                [{"event_id": f"e{i}", "occurred_at": f"2026-03-0{1 + i % 3}T10:00:00Z", "scenario": "s", "model": "m",
                  "prompt_version": "v1", "autonomy_level": "assist", "status": "ok", "confidence": 0.9,
                  "output_text": "draft", "input_text": "question"} for i in range(9)])
    run_days(settings, date(2026, 3, 1), date(2026, 3, 1), quiet=True, progress=False)
    # what the docs tell analysts to do with tables of their own: a database of theirs attaching ours
    own = duckdb.connect(str(tmp_path / "mine.duckdb"))
    try:
        own.execute("ATTACH ? AS fw (READ_ONLY)", [str(settings.db)])
        own.execute("SET VARIABLE flywheel_store = ?", [str(settings.store)])
        own.execute("CREATE TABLE notes AS SELECT count(*) AS n FROM fw.ingest.events")
        run_days(settings, date(2026, 3, 2), date(2026, 3, 2), quiet=True, progress=False)
    finally:
        own.close()
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(settings.db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(duckdb.IOException, match="lock"):  # the file really is held
            duckdb.connect(str(settings.db), read_only=True)
        ran = run_days(settings, date(2026, 3, 3), date(2026, 3, 3), quiet=True, progress=False)
        assert ran is not None and ran.days == [date(2026, 3, 3)]
        report = (settings.publish / "report" / "latest.html").read_text()
        assert "data through <b>2026-03-03</b>" in report
        from assets.cli import main as cli  # the summary an operator prints reads the same views in memory

        assert cli(["summary", "--json"]) == 0
    finally:
        holder.communicate("", timeout=60)
    own = duckdb.connect(str(tmp_path / "mine.duckdb"))
    try:
        own.execute("ATTACH ? AS fw (READ_ONLY)", [str(settings.db)])
        own.execute("SET VARIABLE flywheel_store = ?", [str(settings.store)])
        assert own.sql("SELECT n FROM notes").fetchall() == [(3,)]  # the analyst's table outlived two nights
        assert own.sql("SELECT event_date, count(*) FROM fw.ingest.events GROUP BY 1 ORDER BY 1").fetchall() == \
            [(date(2026, 3, d), 3) for d in (1, 2, 3)]
    finally:
        own.close()


def test_a_catalog_build_removes_the_temporary_database_a_killed_build_left(settings: Settings) -> None:
    from flywheel.catalog import build_catalog

    settings.db.parent.mkdir(parents=True, exist_ok=True)
    left = [settings.db.parent / f".{settings.db.name}.k1ll3d.tmp", settings.db.parent / f".{settings.db.name}.k1ll3d.tmp.wal"]
    for path in left:
        path.write_bytes(b"half a database")
    build_catalog(settings)
    assert [p for p in left if p.exists()] == []
    assert settings.db.exists()
