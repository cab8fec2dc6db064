"""The typed JSON Lines path (`flywheel/ingest/typed.py`): records msgspec decodes straight into checked
structs are staged exactly as the per-record reference stages them, and text the two JSON decoders
read differently (duplicate keys, integers beyond 64 bits, deep nesting, number spellings) still ends
as the reference says."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from conftest import write_jsonl
from flywheel.ingest.batches import jsonl_chunks
from flywheel.ingest.typed import DECODE_ERRORS, STRUCTS, decoder, typed_batch
from flywheel.ingest.validate import check_record
from test_ingest_fastpath import _BASE, _TRICKY, _assert_same, _both_ways

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_INTERVENTION = {"intervention_id": "i1", "event_id": "e1", "occurred_at": "2026-03-01T10:00:00Z", "action": "accepted"}


def _micros(t: datetime) -> int:
    d = t - _EPOCH
    return d.days * 86_400_000_000 + d.seconds * 1_000_000 + d.microseconds


@pytest.mark.parametrize("kind", ["events", "interventions"])
def test_each_record_the_typed_path_accepts_is_the_reference_row(kind):
    base = _BASE if kind == "events" else _INTERVENTION
    records = [{**base, **change} for change in _TRICKY]
    if kind == "interventions":
        records += [{**base, "action": "edited"}, {**base, "action": "edited", "final_text": "x"},
                    {**base, "action": "edited", "final_text": ""}, {**base, "reviewer_id": ""},
                    {**base, "review_seconds": 0}, {**base, "review_seconds": -0.5}]
    lines = [orjson.dumps(r) for r in records]
    decode = decoder(kind)
    decoded: list[object] = []
    for line in lines:
        try:
            decoded.append(decode(line))
        except DECODE_ERRORS:
            decoded.append(orjson.loads(line))
    structs = sum(type(d) is STRUCTS[kind] for d in decoded)
    batch = typed_batch(kind, decoded)
    accepted = 0
    for i, line in enumerate(lines):
        row, _ = check_record(kind, orjson.loads(line))
        if not batch.ok[i]:
            continue  # the reference decides
        accepted += 1
        assert row is not None, line
        row["occurred_at"] = _micros(row["occurred_at"])
        assert {name: batch.columns[name][i] for name in row} == row, line
    # the typed decoder takes the common shapes, and refuses the rest (to orjson and the reference)
    assert 20 <= structs < len(lines) - 10
    assert accepted >= 25


_EVENT = json.dumps(_BASE)[:-1]  # the base event's text without its closing brace

# Lines both decoders parse but may read differently; each must stage as the reference stages it.
_DISAGREEING = [
    _EVENT + ', "scenario": "a", "scenario": "b"}',  # a key twice: the last copy counts
    _EVENT + ', "attributes": {"k": 1, "k": {"x": 1, "x": 2}, "j": 3}}',
    _EVENT + ', "tool_calls": [{"name": "t", "status": "ok", "arguments": {"a": 1, "a": 2}}]}',
    _EVENT + ', "attributes": {"n": 18446744073709551615}}',  # the largest unsigned 64-bit integer
    _EVENT + ', "attributes": {"n": 18446744073709551616}}',  # one more: orjson reads a float
    _EVENT + ', "attributes": {"n": -9223372036854775809}}',
    _EVENT + ', "decision_path": {"n": 123456789012345678901234567890}}',
    _EVENT + ', "tool_calls": [{"name": "t", "status": "ok", "arguments": [100000000000000000000]}]}',
    _EVENT + ', "attributes": {"x": ' + "[" * 300 + "]" * 300 + '}}',  # deeper than orjson writes
    _EVENT + ', "attributes": {"x": ' + "[" * 1100 + "]" * 1100 + '}}',  # deeper than orjson reads
    _EVENT + ', "attributes": {"x": ' + "[" * 5000 + "]" * 5000 + '}}',  # deeper than msgspec reads
    _EVENT + ', "confidence": 1E-1, "latency_ms": -0, "input_tokens": 0, "output_tokens": 9223372036854775807}',
    _EVENT + ', "latency_ms": 9007199254740993, "confidence": 0.1e1}',
    _EVENT + ', "input_tokens": 9223372036854775808}',
    _EVENT + ', "latency_ms": 1e400}',
    _EVENT + ', "latency_ms": 1e-400, "confidence": -0.0}',
    _EVENT + ', "input_text": "\\ud83d\\ude00 \\u00e9 \\u0000 \\/"}',
    _EVENT + ', "input_text": "\\ud800"}',  # a lone surrogate
    _EVENT + ', "decision_path": "\\udc00x"}',
    _EVENT + ', "attributes": {"\\u00e9": "é"}, "trace_id": ""}',
    _EVENT + ', "prompt_version": null, "attributes": null, "tool_calls": null}',
    _EVENT + ', "attributes": {}, "tool_calls": [], "decision_path": {}}',
    _EVENT + ', "tool_calls": [{"name": "t", "status": "ok", "extra": 1}]}',
    _EVENT + ', "extra": 1}',  # an unknown key: folded into attributes by the reference
    _EVENT + ', "occurred_at": "2026-03-01T10:00:00+25:00"}',
    _EVENT + ',}',
    _EVENT + '} ',
    "\ufeff" + _EVENT + '}',
    _EVENT + ', "input_text": "\t"}',
    _EVENT + ', "confidence": NaN}',
    _EVENT + ', "latency_ms": 01}',
]


def _staged_both_ways(tmp_path, name: str, lines: list[bytes]) -> dict[int, str]:
    """Stage `lines` as the events file `name` by the sync and by the per-record reference, assert both
    stage them alike, and return the reference's quarantine reason code of each quarantined line."""
    landing = tmp_path / "landing"
    (landing / "events").mkdir(parents=True)
    write_jsonl(landing / "events" / name, lines)
    fast, ref = _both_ways(landing, tmp_path)
    _assert_same(fast, ref)
    quarantine = [v for k, v in ref.items() if "quarantine" in k]
    return {r["source_line"]: r["reason_code"] for _, rows in quarantine for r in rows}  # type: ignore[misc]


def test_text_the_decoders_read_differently_stages_as_the_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_HASH_KEY", "typed-test")
    lines = [line.encode() for line in _DISAGREEING]
    lines = [line.replace(b'"e1"', f'"e{i}"'.encode(), 1) for i, line in enumerate(lines)]
    decode = decoder("events")
    taken = []
    for line in lines:
        try:
            decode(line)
            taken.append(line)
        except DECODE_ERRORS:
            pass
    assert len(taken) >= 15  # these reach the typed path, not only the reference
    reasons = _staged_both_ways(tmp_path, "disagree.jsonl", lines)
    assert reasons[10] == "invalid_json" and reasons[11] == "invalid_json"  # nested past orjson's reading
    assert reasons[9] == "invalid_json"  # past orjson's writing: too deeply nested to store
    assert 1 not in reasons and 5 not in reasons  # 64-bit unsigned kept; a bigger one read as a float


def _extra_key(value: bytes, key: bytes = b'"x"') -> bytes:
    return _EVENT.encode() + b', "tool_calls": [{"name": "t", "status": "ok", ' + key + b": " + value + b"}]}"


# A tool call's extra key: its value is one the reference refuses (orjson reads it), which msgspec would skip
# unread if tool calls took other keys; the same with a timestamp only the reference reads, or none can.
_SKIPPED = [_extra_key(b'"\xff"'), _extra_key(b"1", key=b'"\xff"'), _extra_key(b"1e400"),
            _extra_key(b"1" + b"0" * 400), _extra_key(b"[1, [-1e999]]"),
            _extra_key(b'"\xff"').replace(b"2026-03-01T10:00:00Z", b"yesterday"),
            _extra_key(b'"\xff"').replace(b"2026-03-01T10:00:00Z", b"1850-03-01T10:00:00Z"),
            _extra_key(b"1e400").replace(b"2026-03-01T10:00:00Z", b"yesterday"),
            _extra_key(b'"fine"')]


def test_a_value_msgspec_would_skip_is_read_by_the_reference(tmp_path):
    """Found in review: a tool call's extra key was skipped by msgspec unread, so invalid UTF-8 or a
    number beyond a double there was stored where the reference quarantines it (and with a timestamp
    only the reference reads, the sync stopped on the line's undecodable bytes)."""
    lines = [line.replace(b'"e1"', f'"e{i}"'.encode(), 1) for i, line in enumerate(_SKIPPED)]
    reasons = _staged_both_ways(tmp_path, "skipped.jsonl", lines)
    assert reasons == {1: "not_utf8", 2: "not_utf8", 3: "invalid_json", 4: "invalid_json", 5: "invalid_json",
                       6: "not_utf8", 7: "not_utf8", 8: "invalid_json"}, reasons


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "é", ""]), inner, max_size=3),
    max_leaves=8)


@st.composite
def _events(draw):
    """Events in (or near) the common shape, with any JSON in their JSON-valued fields and numbers of
    every size, spelled in several ways."""
    lines = []
    for i in range(draw(st.integers(1, 15))):
        r: dict[str, object] = {**_BASE, "event_id": f"e{i}"}
        for name, values in (("confidence", st.floats(-0.5, 1.5) | st.integers(-1, 2)),
                             ("latency_ms", st.floats(allow_nan=False) | st.integers(-2**65, 2**65)),
                             ("input_tokens", st.integers(-2**64, 2**64) | st.floats(-1, 10)),
                             ("attributes", _JSON), ("decision_path", _JSON), ("output_text", st.text(max_size=5))):
            if draw(st.booleans()):
                r[name] = draw(values)
        if draw(st.booleans()):
            r["tool_calls"] = draw(st.lists(st.fixed_dictionaries(
                {"name": st.sampled_from(["t", ""]), "status": st.sampled_from(["ok", "denied", "maybe"])},
                optional={"arguments": _JSON}), max_size=2))
        text = json.dumps(r, ensure_ascii=draw(st.booleans()), separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
        if draw(st.booleans()):  # the same key twice, the second copy differing
            key = draw(st.sampled_from(["scenario", "attributes", "confidence"]))
            text = text[:-1] + f', "{key}": ' + json.dumps(draw(_JSON)) + "}"
        lines.append(text.encode())
    return lines


@st.composite
def _interventions(draw):
    """Interventions in (or near) the common shape: every action, final texts present, absent or
    empty, review times of every size and spelling, reviewer ids (stored pseudonymised)."""
    lines = []
    for i in range(draw(st.integers(1, 15))):
        r: dict[str, object] = {**_INTERVENTION, "intervention_id": f"i{i}",
                                "action": draw(st.sampled_from(["accepted", "edited", "rejected", "escalated", "reverted", "x"]))}
        for name, values in (("final_text", st.sampled_from(["", "shipped", "é\u2028"]) | st.none()),
                             ("review_seconds", st.floats(allow_nan=False) | st.integers(-2**64, 2**64)),
                             ("reviewer_id", st.text(max_size=4)), ("reason_code", st.text(max_size=3) | st.integers()),
                             ("comment", st.text(max_size=5))):
            if draw(st.booleans()):
                r[name] = draw(values)
        text = json.dumps(r, ensure_ascii=draw(st.booleans()))
        if draw(st.booleans()):  # the same key twice
            key = draw(st.sampled_from(["action", "final_text", "review_seconds"]))
            text = text[:-1] + f', "{key}": ' + json.dumps(draw(st.sampled_from(["edited", "", None, 3, -1.5]))) + "}"
        lines.append(text.encode())
    return lines


@hsettings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(events=_events(), interventions=_interventions())
def test_hypothesis_typed_records_stage_as_the_reference(tmp_path_factory, monkeypatch, events, interventions):
    monkeypatch.setenv("FLYWHEEL_HASH_KEY", "typed-test")  # one pseudonym key for both stores
    root = tmp_path_factory.mktemp("typed")
    for kind, lines in (("events", events), ("interventions", interventions)):
        (root / "landing" / kind).mkdir(parents=True)
        write_jsonl(root / "landing" / kind / f"{kind}.jsonl", lines)
    fast, ref = _both_ways(root / "landing", root)
    _assert_same(fast, ref)


def test_a_chunk_of_common_records_is_decoded_into_structs():
    """The JSON Lines reader hands common records to the typed path (not as dicts)."""
    line = json.dumps({**_BASE, "confidence": 0.5, "tool_calls": [{"name": "t", "status": "ok", "arguments": {"q": 1}}]})
    block = "\n".join(line.replace('"e1"', f'"e{i}"') for i in range(100)).encode() + b'\n{"extra": 1}'
    (chunk,) = jsonl_chunks(iter([(1, block, frozenset())]), "events")
    assert sum(isinstance(r, msgspec.Struct) for r in chunk.records) == 100
    assert chunk.records[100] == {"extra": 1} and chunk.record(100) == ({"extra": 1}, None)
    assert chunk.record(1)[0] == json.loads(line)  # read again from its line, for the reference
