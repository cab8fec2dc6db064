"""The stored form of JSON-valued fields and `record_hash` (`canonical.finish`), and the duplicate
verdicts that rest on them: copies with the same content are duplicates whatever their JSON key order
or the version that staged them; copies with other content are conflicts."""

from __future__ import annotations

import csv
import hashlib
import json

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from conftest import write_jsonl
from flywheel.ingest.canonical import same_content
from flywheel.ingest.partition import build_events
from flywheel.ingest.sync import sync_landing
from flywheel.ingest.validate import validate_record
from flywheel.store import Layout
from test_ingest import DAY, event


def _stage_and_build(settings):
    sync_landing(settings)
    return build_events(settings, DAY)


def _verdicts(settings) -> tuple[list[tuple], list[tuple]]:
    """The day's exact duplicates (id, file) and quarantined copies (file, reason code)."""
    layout = Layout(settings.store)
    dups = pq.read_table(layout.table("duplicates/events", DAY)).to_pylist()
    conflicts = pq.read_table(layout.table("quarantine/events", DAY)).to_pylist()
    return ([(d["record_id"], d["source_file"]) for d in dups],
            [(c["source_file"], c["reason_code"]) for c in conflicts])


def test_json_fields_are_stored_as_duckdb_writes_them_in_record_order():
    row, problems = validate_record("events", event(1, decision_path={"z": 1, "a": [1.50, 1e20, 2E-7]},
                                                    attributes={"b": {"y": True, "x": None}, "a": "é/"},
                                                    tool_calls=[{"name": "t", "status": "ok",
                                                                 "arguments": {"q": 2.0, "p": "x"}}]))
    assert problems == []
    assert row["decision_path"] == '{"z":1,"a":[1.5,100000000000000000000.0,2e-7]}'
    assert row["attributes"] == '{"b":{"y":true,"x":null},"a":"é/"}'
    assert row["tool_calls"] == [{"name": "t", "status": "ok", "arguments": '{"q":2.0,"p":"x"}'}]
    assert len(row["record_hash"]) == 16 and int(row["record_hash"], 16) >= 0


def test_the_hash_follows_content_not_spelling():
    a, _ = validate_record("events", event(1))
    b, _ = validate_record("events", event(1, occurred_at="2026-03-01T12:00:00+01:00"))  # the same instant
    c, _ = validate_record("events", event(1, output_text="other"))
    d, _ = validate_record("events", event(1, attributes={"k": 1.0}))  # 1 and 1.0 are different values
    assert a["record_hash"] == b["record_hash"]
    assert len({a["record_hash"], c["record_hash"], d["record_hash"]}) == 3


def test_same_content_compares_json_as_values():
    a, _ = validate_record("events", event(1, decision_path={"route": "auto", "gate": 0.8}))
    b, _ = validate_record("events", event(1, decision_path={"gate": 0.8, "route": "auto"}))
    c, _ = validate_record("events", event(1, decision_path={"gate": 0.9, "route": "auto"}))
    assert a["decision_path"] != b["decision_path"] and a["record_hash"] != b["record_hash"]
    assert same_content("events", a, b)
    assert not same_content("events", a, c)
    assert not same_content("events", a, {**a, "attributes": '{"k":1.0}'})  # {"k":1} stored: 1 is not 1.0


def test_a_copy_with_its_json_keys_in_another_order_is_a_duplicate_and_other_content_a_conflict(settings):
    write_jsonl(settings.landing / "events" / "a.jsonl", [event(1, decision_path={"route": "x", "gate": 0.5}), event(2)])
    write_jsonl(settings.landing / "events" / "b.jsonl", [
        event(1, decision_path={"gate": 0.5, "route": "x"},
              tool_calls=[{"status": "ok", "arguments": {"i": 1}, "name": "lookup"}]),  # same content
        {**event(2, attributes={"k": 2, "extra": "x"})}])  # other content
    result = _stage_and_build(settings)
    assert (result.staged, result.stored, result.duplicates, result.quarantined) == (4, 2, 1, 1)
    assert _verdicts(settings) == ([("e1", "events/b.jsonl")], [("events/b.jsonl", "conflicting_duplicate")])


def test_an_empty_tool_call_list_and_none_are_other_content(settings):
    """Found in review: DuckDB hashes an empty list as it hashes NULL, so a copy without tool calls was
    dropped as an exact duplicate of one with an empty list, though they are stored apart."""
    with_empty = event(1, tool_calls=[])
    without = {k: v for k, v in event(1).items() if k != "tool_calls"}
    a, _ = validate_record("events", with_empty)
    b, _ = validate_record("events", without)
    assert (a["tool_calls"], b["tool_calls"]) == ([], None) and a["record_hash"] != b["record_hash"]
    write_jsonl(settings.landing / "events" / "a.jsonl", [with_empty, event(2, tool_calls=[])])
    write_jsonl(settings.landing / "events" / "b.jsonl", [without, event(2, tool_calls=[])])
    result = _stage_and_build(settings)
    assert (result.staged, result.stored, result.duplicates, result.quarantined) == (4, 2, 1, 1)
    assert _verdicts(settings) == ([("e2", "events/b.jsonl")], [("events/b.jsonl", "conflicting_duplicate")])


def test_copies_staged_by_an_earlier_version_keep_their_verdicts(settings):
    """A store staged before this contract: JSON fields with sorted keys and a 32-digit blake2b
    record_hash. A later file's copies of its events are duplicates where the content is the same
    and conflicts where it differs, without rewriting the old pieces."""
    write_jsonl(settings.landing / "events" / "a.jsonl", [event(1, decision_path={"route": "x", "gate": 0.5}),
                                                          event(2)])
    sync_landing(settings)
    layout = Layout(settings.store)
    (piece,) = layout.root.glob("staging/events/*/*.parquet")
    old = pq.read_table(piece).to_pylist()
    for row in old:  # as the earlier version wrote it
        for name in ("decision_path", "attributes"):
            row[name] = orjson.dumps(orjson.loads(row[name]), option=orjson.OPT_SORT_KEYS).decode()
        row["record_hash"] = hashlib.blake2b(json.dumps(row, default=str).encode(), digest_size=16).hexdigest()
    schema = pq.read_schema(piece)
    pq.write_table(pa.Table.from_pylist(old, schema=schema), piece)
    assert pq.read_table(piece)["decision_path"][0].as_py() == '{"gate":0.5,"route":"x"}'
    write_jsonl(settings.landing / "events" / "b.jsonl", [event(1, decision_path={"route": "x", "gate": 0.5}),
                                                          event(2, output_text="changed")])
    result = _stage_and_build(settings)
    assert (result.staged, result.stored, result.duplicates, result.quarantined) == (4, 2, 1, 1)
    stored = pq.read_table(layout.table("events", DAY)).to_pylist()
    assert [r["source_file"] for r in stored] == ["events/a.jsonl"] * 2  # the first copies are kept as they were
    conflicts = pq.read_table(layout.table("quarantine/events", DAY)).to_pylist()
    assert [json.loads(c["raw"])["output_text"] for c in conflicts] == ["changed"]
    assert build_events(settings, DAY) == result  # and a rebuild says the same


_HASHES = """
import json, sys
import pyarrow as pa, pyarrow.parquet as pq
from flywheel.ingest.canonical import finish
table = pq.read_table(sys.argv[1])
blank = table.set_column(table.schema.get_field_index("record_hash"), "record_hash", pa.array([""] * table.num_rows))
print(json.dumps(finish("events", blank)["record_hash"].to_pylist()))
"""


def test_staged_hashes_are_the_same_in_another_process_in_another_time_zone(settings):
    import os
    import subprocess
    import sys

    write_jsonl(settings.landing / "events" / "a.jsonl", [event(i) for i in range(5)])
    sync_landing(settings)
    (piece,) = Layout(settings.store).root.glob("staging/events/*/*.parquet")
    staged = pq.read_table(piece)["record_hash"].to_pylist()
    assert len(set(staged)) == 5
    # A plain child process (a multiprocessing pool's worker, given SIGTERM on the pool's exit, could
    # hang the test run in a session whose imports handle that signal).
    out = subprocess.run([sys.executable, "-c", _HASHES, str(piece)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "TZ": "America/Los_Angeles"}, check=True)
    assert json.loads(out.stdout) == staged


def test_a_key_given_twice_keeps_its_last_value_in_every_format(settings):
    """JSON Lines decoded whole and a CSV cell decoded on its own store the same text."""
    line = json.dumps(event(1, decision_path={"x": 0})).replace('{"x": 0}', '{"route": "a", "gate": 1e2, "route": "b"}')
    (settings.landing / "events" / "a.jsonl").write_text(line + "\n")
    row = {k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in event(2).items()}
    row["decision_path"] = '{"route": "a", "gate": 1e2, "route": "b"}'
    with open(settings.landing / "events" / "b.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    sync_landing(settings)
    staged = pa.concat_tables([pq.read_table(p) for p in sorted(Layout(settings.store).root.glob("staging/events/*/*.parquet"))])
    assert sorted(staged["decision_path"].to_pylist()) == ['{"route":"b","gate":100.0}'] * 2


def test_a_whole_file_delivered_again_after_the_change_is_compared_in_batches(settings, monkeypatch):
    """Every copy of a redelivered file is a pair to compare when its first copies carry an earlier
    version's hash: the pairs are read a batch at a time, and every one of them is a duplicate."""
    import flywheel.ingest.partition as partition

    events = [event(i, decision_path={"route": "x", "gate": i / 100}) for i in range(25)]
    write_jsonl(settings.landing / "events" / "a.jsonl", events)
    sync_landing(settings)
    (piece,) = Layout(settings.store).root.glob("staging/events/*/*.parquet")
    table = pq.read_table(piece)
    old = table.set_column(table.schema.get_field_index("record_hash"), table.schema.field("record_hash"),
                           pa.array([f"{i:032x}" for i in range(table.num_rows)]))
    pq.write_table(old, piece)
    write_jsonl(settings.landing / "events" / "b.jsonl", events)
    monkeypatch.setattr(partition, "_PAIRS", 10)
    result = _stage_and_build(settings)
    assert (result.staged, result.stored, result.duplicates, result.quarantined) == (50, 25, 25, 0)


def test_interventions_staged_by_an_earlier_version_keep_their_verdicts(settings):
    from flywheel.ingest.partition import build_interventions
    from test_ingest import intervention

    write_jsonl(settings.landing / "events" / "e.jsonl", [event(1), event(2)])
    write_jsonl(settings.landing / "interventions" / "a.jsonl", [intervention(1, "e1"), intervention(2, "e2")])
    sync_landing(settings)
    (piece,) = Layout(settings.store).root.glob("staging/interventions/*/*.parquet")
    table = pq.read_table(piece)
    pq.write_table(table.set_column(table.schema.get_field_index("record_hash"), table.schema.field("record_hash"),
                                    pa.array(["0" * 32, "1" * 32])), piece)
    write_jsonl(settings.landing / "interventions" / "b.jsonl",
                [intervention(1, "e1"), intervention(2, "e2", action="rejected")])
    sync_landing(settings)
    build_events(settings, DAY)
    result = build_interventions(settings, DAY)
    assert (result.staged, result.stored, result.duplicates, result.quarantined) == (4, 2, 1, 1)
