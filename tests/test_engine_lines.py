"""DuckDB's engine path for JSON Lines (`engine_lines.stage_block`) stages a block exactly as the
per-record path (`batches.jsonl_chunks` + `chunk_stager.stage_chunk`) does: same staged rows and
hashes, same quarantine rows, same count, on lines where DuckDB's JSON reader and orjson differ
(trailing commas, NaN, duplicate keys, huge numbers, escapes, bad UTF-8) and on every tricky
record of test_ingest_fastpath; and it does take the common records itself."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pytest

from flywheel.generate import generate
from flywheel.ingest import engine_lines, readers
from flywheel.ingest.batches import jsonl_chunks, line_blocks
from flywheel.ingest.chunk_stager import stage_chunk
from test_ingest_fastpath import _BASE, _TRICKY

KEY = b"engine-lines-test-key-0123456789"
_IV_BASE = {"intervention_id": "i1", "event_id": "e1", "occurred_at": "2026-03-01T10:00:00Z", "action": "accepted"}

# Lines DuckDB's JSON reader and orjson read differently, or that only one of them reads at all.
_EV = orjson.dumps(_BASE).decode()[1:-1]  # the base event's fields, without braces
RAW_EVENTS = [
    "{" + _EV + ',"confidence":0.5,}',                      # trailing comma: DuckDB accepts, orjson refuses
    "{" + _EV + ',"tool_calls":[{"name":"a","status":"ok",}]}',
    "{" + _EV + ',"attributes":{"a":[1,2,]}}',
    "{" + _EV + ',"confidence":NaN}', "{" + _EV + ',"latency_ms":Infinity}', "{" + _EV + ',"latency_ms":-Infinity}',
    "{" + _EV + ',"attributes":{"x":NaN}}', "{" + _EV + ',"latency_ms":1e400}', "{" + _EV + ',"attributes":{"x":1e400}}',
    "{" + _EV + ',"scenario":"first","scenario":"second"}',  # orjson keeps the last copy, DuckDB the first
    "{" + _EV + ',"attributes":{"k":1,"k":2}}', "{" + _EV + ',"tool_calls":[{"name":"a","name":"b","status":"ok"}]}',
    "{" + _EV + ',"input_text":"nul \\u0000 inside"}', "{" + _EV + ',"input_text":"pair \\ud83d\\ude00 ok"}',
    "{" + _EV + ',"input_text":"lone \\ud83d"}', "{" + _EV + ',"input_text":"\\u00e9\\/\\"\\\\\\n\\t"}',
    "{" + _EV + ',"input_text":"tab\tinside"}', "\ufeff{" + _EV + "}", " {" + _EV + "} ", "{" + _EV + "}  ",
    "{" + _EV + ',"latency_ms":12345678901234567890123}', "{" + _EV + ',"latency_ms":9007199254740993}',
    "{" + _EV + ',"input_tokens":18446744073709551615}', "{" + _EV + ',"input_tokens":-0}',
    "{" + _EV + ',"latency_ms":1E2,"confidence":1e-7}', "{" + _EV + ',"confidence":0.1e1}',
    "{" + _EV + ',"confidence":01}', "{" + _EV + ',"confidence":.5}', "{" + _EV + ',"confidence":+0.5}',
    "{" + _EV + ',"attributes":' + "[" * 300 + "]" * 300 + "}", "{" + _EV + ',"attributes":{"d":' + "[" * 250 + "]" * 250 + "}}",
    "{" + _EV + ',"decision_path":{"b":2.50,"a":"x"}}', "{" + _EV + ',"attributes":{"n":-0.0,"m":1.0}}',
    "{" + _EV + '} trailing', "{" + _EV + "}{}", "{" + _EV + ",/*c*/}", "{'event_id':'e'}", "{}", "{ }", "[1]", "1",
    "null", '"text"', "", "   ", "{" + _EV + ',"Scenario":"x"}', "{" + _EV + ',"extra":{"b":1,"a":2}}',
    "{" + _EV + ',"input_text":"' + "x" * 5000 + '"}',
]


def _per_record(kind: str, first: int, block: bytes) -> tuple[int, pa.Table | None, list[dict]]:
    quarantine: list[dict] = []
    tables, n = [], 0
    for chunk in jsonl_chunks(iter([(first, block, frozenset())]), kind):
        table = stage_chunk(chunk, "events/f.jsonl", 3, quarantine, KEY, {})
        n += len(chunk)
        if table is not None:
            tables.append(table)
    return n, (pa.concat_tables(tables) if tables else None), quarantine


def _assert_same_block(kind: str, block: bytes, first: int = 1, monkeypatch=None) -> int:
    """Stage `block` both ways and compare; returns how many records the per-record path saw inside
    the engine path (the rest DuckDB vouched for)."""
    slow = []
    if monkeypatch is not None:
        def counting(chunk, *args):
            slow.append(len(chunk))
            return stage_chunk(chunk, *args)
        monkeypatch.setattr(engine_lines, "stage_chunk", counting)
    got = engine_lines.stage_block(kind, first, block, frozenset(), "events/f.jsonl", 3, KEY, {}, readers.MAX_RECORD_BYTES)
    assert got is not None
    n, table, quarantine = got
    want_n, want_table, want_quarantine = _per_record(kind, first, block)
    assert n == want_n
    assert quarantine == want_quarantine
    assert (table is None) == (want_table is None)
    if table is not None:
        assert table.schema == want_table.schema
        assert table.to_pylist() == want_table.to_pylist()
    return sum(slow)


@pytest.mark.parametrize("kind", ["events", "interventions"])
def test_tricky_records_stage_as_the_per_record_path_stages_them(kind, monkeypatch):
    base = _BASE if kind == "events" else _IV_BASE
    records = [{**base, **change} for change in _TRICKY]
    if kind == "interventions":
        records += [{**base, "action": "edited"}, {**base, "action": "edited", "final_text": "x"},
                    {**base, "action": "edited", "final_text": ""}, {**base, "reviewer_id": "ann"},
                    {**base, "reviewer_id": ""}, {**base, "review_seconds": 12}, {**base, "review_seconds": -1}]
    lines = [orjson.dumps(r) for r in records]
    slow = _assert_same_block(kind, b"\n".join(lines), first=7, monkeypatch=monkeypatch)
    assert slow < len(lines) - 10  # the engine path took the common shapes itself


def test_lines_duckdb_and_orjson_read_differently_stage_as_the_per_record_path(monkeypatch):
    lines = [line.encode() for line in RAW_EVENTS]
    lines += [b"{" + _EV.encode() + b',"input_text":"bad \xff utf-8"}', b"\xc3(", b"{" + _EV.encode() + b"}"]
    slow = _assert_same_block("events", b"\n".join(lines), first=1, monkeypatch=monkeypatch)
    assert slow <= len(lines) - 5


def test_generated_days_stage_as_the_per_record_path_stages_them(tmp_path, monkeypatch):
    generate(tmp_path, days=4, events_per_day=3000, seed=5, progress=False)
    files = sorted(p for p in tmp_path.glob("*/*.jsonl*"))
    assert {p.parent.name for p in files} == {"events", "interventions"}
    slow = 0
    total = 0
    for path in files:
        for first, block, long in line_blocks(path):
            assert not long
            slow += _assert_same_block(path.parent.name, block, first, monkeypatch)
            total += block.count(b"\n") + 1
    assert total > 6000 and slow < total * 0.02  # the generator's bad records (~1%) go the slow way
