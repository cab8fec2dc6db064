"""Arize Phoenix as a pulled source, against a real Phoenix server.

A session fixture starts `phoenix serve` from .venv-phoenix (`make servers`) on 127.0.0.1 with free
HTTP and gRPC ports, a SQLite working directory in tmp and telemetry off, and stops its process
group at the end. Each test fills its own project with LLM spans through OTLP/HTTP protobuf
(opentelemetry-proto, no SDK) and annotates them through the REST API (?sync=true), then pulls.
Without .venv-phoenix the tests skip with one line saying why, unless FLYWHEEL_REQUIRE_SERVERS=1
(CI), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from flywheel.config import Settings
from flywheel.sources import load_sources
from flywheel.sources.phoenix import PhoenixServer, phoenix_config
from flywheel.sources.pull import load_state, pull, source_dir, window_of
from tests.conftest import query

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-phoenix"
READY_TIMEOUT = 180.0  # seconds; a fresh server took 55 s to answer on a loaded 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, body: Any = None, content_type: str = "application/json") -> Any:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=30) as r:
        raw = r.read()
    return json.loads(raw) if raw and content_type == "application/json" else raw


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a Phoenix server started for this session."""
    program = VENV / "bin" / "phoenix"
    if not (program.exists() and (VENV / ".installed").exists()):
        why = f"{VENV.name} is missing (make servers: scripts/server-venvs.sh phoenix)"
        if os.environ.get("FLYWHEEL_REQUIRE_SERVERS") == "1":
            pytest.fail(f"FLYWHEEL_REQUIRE_SERVERS=1 and {why}")
        pytest.skip(f"no Phoenix server: {why}")
    work = tmp_path_factory.mktemp("phoenix")
    port, grpc = _free_port(), _free_port()
    env = {**os.environ, "PHOENIX_WORKING_DIR": str(work / "wd"), "PHOENIX_HOST": "127.0.0.1",
           "PHOENIX_PORT": str(port), "PHOENIX_GRPC_PORT": str(grpc), "PHOENIX_TELEMETRY_ENABLED": "false",
           "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false", "PHOENIX_DISABLE_AGENT_ASSISTANT": "true"}
    env = {k: v for k, v in env.items() if k not in ("PHOENIX_SQL_DATABASE_URL", "PHOENIX_COLLECTOR_ENDPOINT")}
    log = (work / "phoenix.log").open("wb")
    proc = subprocess.Popen([str(program), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"phoenix serve exited {proc.returncode}: {(work / 'phoenix.log').read_text()[-2000:]}")
            try:
                if _http("GET", f"{base}/healthz", content_type="text/plain") == b"OK":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"phoenix serve did not answer within {READY_TIMEOUT:.0f} s")
            time.sleep(1)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


def _kv(key: str, value: Any) -> Any:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    if isinstance(value, bool):
        v = AnyValue(bool_value=value)
    elif isinstance(value, int):
        v = AnyValue(int_value=value)
    elif isinstance(value, float):
        v = AnyValue(double_value=value)
    else:
        v = AnyValue(string_value=str(value))
    return KeyValue(key=key, value=v)


def send_spans(base: str, project: str, spans: list[dict[str, Any]]) -> None:
    """POST spans as OTLP/HTTP protobuf: each {trace_id, span_id (hex), name, start (datetime),
    ms, attributes, error, parent_id}."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

    out = []
    for s in spans:
        start = int(s["start"].timestamp() * 1e9)
        out.append(Span(trace_id=bytes.fromhex(s["trace_id"]), span_id=bytes.fromhex(s["span_id"]),
                        parent_span_id=bytes.fromhex(s["parent_id"]) if s.get("parent_id") else b"",
                        name=s["name"], kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=start,
                        end_time_unix_nano=start + s["ms"] * 1_000_000,
                        status=Status(code=Status.STATUS_CODE_ERROR if s.get("error") else Status.STATUS_CODE_OK),
                        attributes=[_kv(k, v) for k, v in s["attributes"].items()]))
    req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource={"attributes": [_kv("service.name", "support-bot"), _kv("openinference.project.name", project)]},
        scope_spans=[ScopeSpans(scope={"name": "flywheel-test"}, spans=out)])])
    _http("POST", f"{base}/v1/traces", req.SerializeToString(), content_type="application/x-protobuf")


def wait_for_spans(base: str, project: str, span_ids: set[str]) -> None:
    """Phoenix ingests asynchronously: poll until every span is readable."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            body = _http("GET", f"{base}/v1/projects/{project}/spans?limit=1000")
            if span_ids <= {s["context"]["span_id"] for s in body["data"]}:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"spans {sorted(span_ids)} never became readable")


def annotate(base: str, span_id: str, name: str, kind: str, result: dict[str, Any],
             metadata: dict[str, Any] | None = None, identifier: str = "") -> str:
    body = _http("POST", f"{base}/v1/span_annotations?sync=true", {"data": [
        {"span_id": span_id, "name": name, "annotator_kind": kind, "result": result,
         "metadata": metadata or {}, "identifier": identifier}]})
    return body["data"][0]["id"]


def _sources_file(tmp_path: Path, base: str, project: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(f"version: 1\npull:\n  phoenix:\n    url: {base}\n    project: {project}\n")
    return path


def _landed(settings: Settings, kind: str) -> dict[str, dict[str, Any]]:
    key = "event_id" if kind == "events" else "intervention_id"
    folder = settings.landing / kind / "phoenix"
    rows = [json.loads(line) for p in sorted(folder.glob("*.jsonl")) for line in p.read_text().splitlines()]
    return {r[key]: r for r in rows}


def _quarantined(settings: Settings) -> list[dict[str, Any]]:
    folder = source_dir(settings, "phoenix") / "quarantine"
    return [json.loads(line) for p in sorted(folder.glob("*.jsonl")) for line in p.read_text().splitlines()]


# Yesterday noon: `flywheel run` builds the days before today.
T0 = (datetime.now(timezone.utc) - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
TRACE1, TRACE2, TRACE4 = "a1" * 16, "b2" * 16, "d4" * 16


def _fill(base: str, project: str) -> None:
    send_spans(base, project, [
        {"trace_id": TRACE1, "span_id": "c0c0c0c0c0c0c0c0", "name": "agent.reply", "start": T0, "ms": 400,
         "attributes": {"openinference.span.kind": "CHAIN", "input.value": "where is my refund?"}},
        {"trace_id": TRACE1, "span_id": "1111111111111111", "parent_id": "c0c0c0c0c0c0c0c0", "name": "ChatCompletion",
         "start": T0 + timedelta(milliseconds=10), "ms": 250, "attributes": {
             "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
             "llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": "where is my refund?",
             "llm.output_messages.0.message.role": "assistant",
             "llm.output_messages.0.message.content": "Your refund of 25 EUR is on its way.",
             "input.value": "{\"messages\": []}", "output.value": "Your refund of 25 EUR is on its way.",
             "llm.token_count.prompt": 12, "llm.token_count.completion": 9, "llm.prompt_template.version": "v3",
             "metadata": json.dumps({"scenario": "refund_request", "confidence": 0.8})}},
        {"trace_id": TRACE2, "span_id": "2222222222222222", "name": "chat gpt-4o", "start": T0 + timedelta(minutes=5),
         "ms": 1500, "error": True, "attributes": {
             "openinference.span.kind": "LLM", "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
             "gen_ai.agent.name": "billing-agent", "input.value": "cancel my plan", "output.value": "",
             "gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 7}},
    ])
    wait_for_spans(base, project, {"c0c0c0c0c0c0c0c0", "1111111111111111", "2222222222222222"})


def test_pull_spans_and_human_annotations_incrementally(phoenix: str, settings: Settings, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    project = "pull-test"
    _fill(phoenix, project)
    a1 = annotate(phoenix, "1111111111111111", "review", "HUMAN",
                  {"label": "edited", "explanation": "the amount is 20 EUR"},
                  {"final_text": "Your refund of 20 EUR is on its way."})
    a2 = annotate(phoenix, "2222222222222222", "review", "HUMAN", {"label": "rejected", "score": 0.0})
    a3 = annotate(phoenix, "1111111111111111", "helpfulness", "LLM", {"label": "good", "score": 0.9})
    a4 = annotate(phoenix, "2222222222222222", "review", "HUMAN", {"explanation": "not sure"}, identifier="second")
    monkeypatch.setenv("FLYWHEEL_SOURCES", str(_sources_file(tmp_path, phoenix, project)))
    monkeypatch.delenv("PHOENIX_API_KEY", raising=False)
    config = phoenix_config()
    assert config.url == phoenix and config.project == project and config.event_types == ["LLM"]

    report = pull(settings, PhoenixServer(settings, config, page_size=1), config)  # one row a page: the cursor
    assert report.reconciles()
    assert (report.fetched["events"], report.landed["events"]) == (2, 2)  # the CHAIN span is no event
    assert (report.fetched["interventions"], report.landed["interventions"], report.quarantined["interventions"]) \
        == (4, 2, 2)
    assert dict(report.reasons) == {"not_human": 1, "annotation_without_result": 1}
    events = _landed(settings, "events")
    e1, e2 = f"{TRACE1}-1111111111111111", f"{TRACE2}-2222222222222222"
    assert sorted(events) == [e1, e2]
    first = events[e1]
    assert first["occurred_at"] == f"{T0:%Y-%m-%dT%H:%M:%S}.010Z"
    assert {k: first[k] for k in ("scenario", "model", "prompt_version", "confidence", "autonomy_level", "status",
                                  "input_text", "output_text", "input_tokens", "output_tokens", "trace_id")} == {
        "scenario": "refund_request", "model": "gpt-4o-mini", "prompt_version": "v3", "confidence": 0.8,
        "autonomy_level": "assist", "status": "ok", "input_text": "where is my refund?",
        "output_text": "Your refund of 25 EUR is on its way.", "input_tokens": 12, "output_tokens": 9,
        "trace_id": TRACE1}
    assert first["latency_ms"] == pytest.approx(250.0)
    assert first["attributes"]["phoenix"] == {"project": project, "id": first["attributes"]["phoenix"]["id"],
                                              "name": "ChatCompletion", "span_kind": "LLM",
                                              "parent_id": "c0c0c0c0c0c0c0c0"}
    # the span's other attributes are kept as flywheel.otlp keeps them; the mapped ones are not
    assert first["attributes"]["metadata.scenario"] == "refund_request"
    assert "llm.token_count.prompt" not in first["attributes"]
    second = events[e2]
    assert {k: second.get(k) for k in ("scenario", "model", "prompt_version", "confidence", "autonomy_level",
                                       "status", "input_text", "output_text", "input_tokens", "output_tokens")} == {
        "scenario": "billing-agent", "model": "gpt-4o", "prompt_version": None, "confidence": None,
        "autonomy_level": "assist", "status": "error", "input_text": "cancel my plan", "output_text": "",
        "input_tokens": 5, "output_tokens": 7}
    assert second["latency_ms"] == pytest.approx(1500.0)
    interventions = {v["event_id"]: v for v in _landed(settings, "interventions").values()}
    edited = interventions[e1]
    assert edited["intervention_id"].startswith(f"{a1}@")
    assert {k: edited[k] for k in ("action", "final_text", "comment")} == {
        "action": "edited", "final_text": "Your refund of 20 EUR is on its way.", "comment": "the amount is 20 EUR"}
    assert interventions[e2]["action"] == "rejected" and interventions[e2]["intervention_id"].startswith(f"{a2}@")
    bad = {q["record_id"]: q for q in _quarantined(settings)}
    assert {k: (v["reason"], v["kind"]) for k, v in bad.items()} == {
        a3: ("not_human", "interventions"), a4: ("annotation_without_result", "interventions")}
    assert bad[a4]["raw"]["result"]["explanation"] == "not sure" and bad[a4]["detail"]

    # a second pull lands nothing: the overlap re-reads both spans, every annotation is known
    again = pull(settings, PhoenixServer(settings, config), config)
    assert again.reconciles() and sum(again.landed.values()) == 0 and sum(again.quarantined.values()) == 0
    assert (again.duplicates["events"], again.duplicates["interventions"]) == (2, 4) and again.files == []

    # a span that reaches Phoenix late (it started 3 hours before the others) and a changed verdict
    late_start = T0 - timedelta(hours=3)
    send_spans(phoenix, project, [{"trace_id": TRACE4, "span_id": "4444444444444444", "name": "ChatCompletion",
                                   "start": late_start, "ms": 100, "attributes": {
                                       "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
                                       "input.value": "hi", "output.value": "hello"}}])
    wait_for_spans(phoenix, project, {"4444444444444444"})
    window = window_of(load_state(settings, "phoenix"), config)
    by_start = {s["context"]["span_id"] for s in PhoenixServer(settings, config).spans("start_time", "asc",
                                                                                         window.events_since)}
    assert "4444444444444444" not in by_start  # a start-time filter alone misses it
    a5 = annotate(phoenix, "4444444444444444", "review", "HUMAN", {"label": "Accepted"})
    assert annotate(phoenix, "1111111111111111", "review", "HUMAN", {"label": "reverted"}) == a1  # an upsert

    monkeypatch.chdir(tmp_path)
    from assets.cli import main

    assert main(["pull", "phoenix"]) == 0
    out = capsys.readouterr().out
    assert "events: fetched 3 = landed 1 + duplicates 2 + quarantined 0" in out
    assert "interventions: fetched 5 = landed 2 + duplicates 3 + quarantined 0" in out
    events = _landed(settings, "events")
    late = events[f"{TRACE4}-4444444444444444"]
    assert (late["occurred_at"], late["scenario"], late["input_text"]) == (
        late_start.strftime("%Y-%m-%dT%H:%M:%SZ"), project, "hi")
    by_id = _landed(settings, "interventions")
    assert sorted((v["event_id"], v["action"]) for k, v in by_id.items() if k.startswith((a1, a5))) == sorted([
        (e1, "edited"), (e1, "reverted"), (f"{TRACE4}-4444444444444444", "accepted")])

    # flywheel run stores them, and the later verdict wins the event's outcome
    assert main(["run", "--quiet", "--no-progress"]) == 0
    assert query(settings, "SELECT count(*) FROM ingest.quarantine") == [(0,)]
    assert query(settings, "SELECT event_id, scenario, model, status FROM ingest.events ORDER BY event_id") == [
        (e1, "refund_request", "gpt-4o-mini", "ok"), (e2, "billing-agent", "gpt-4o", "error"),
        (f"{TRACE4}-4444444444444444", project, "gpt-4o-mini", "ok")]
    assert query(settings, "SELECT count(*) FROM ingest.interventions") == [(4,)]
    assert query(settings, "SELECT event_id, outcome FROM outcomes.event_outcomes ORDER BY event_id") == [
        (e1, "reverted"), (e2, "rejected"), (f"{TRACE4}-4444444444444444", "accepted")]


def test_the_sources_asset_pulls_a_configured_server(phoenix: str, settings: Settings, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    from assets.resources import FlywheelResource
    from assets.sources import configured, source_definitions

    project = "asset-test"
    send_spans(phoenix, project, [{"trace_id": "e5" * 16, "span_id": "5555555555555555", "name": "ChatCompletion",
                                   "start": T0, "ms": 80, "attributes": {"openinference.span.kind": "LLM",
                                                                         "llm.model_name": "gpt-4o-mini"}}])
    wait_for_spans(phoenix, project, {"5555555555555555"})
    annotate(phoenix, "5555555555555555", "review", "HUMAN", {"label": "accepted"})
    sources_file = _sources_file(tmp_path, phoenix, project)
    monkeypatch.setenv("FLYWHEEL_SOURCES", str(sources_file))
    assert configured(load_sources(sources_file)) == ["phoenix"]
    assets, jobs, schedules = source_definitions(load_sources(sources_file))
    assert [a.key.to_user_string() for a in assets] == ["sources/phoenix"]
    result = dg.materialize(assets, resources={"flywheel": FlywheelResource()}, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    [mat] = result.asset_materializations_for_node("sources__phoenix")
    meta = {k: v.value for k, v in mat.metadata.items() if k.startswith(("landed", "fetched"))}
    assert meta == {"fetched_events": 1, "landed_events": 1, "fetched_interventions": 1, "landed_interventions": 1}
    assert [r["event_id"] for r in _landed(settings, "events").values()] == [f"{'e5' * 16}-5555555555555555"]


def test_a_missing_server_url_and_a_bad_section_are_refused(settings: Settings, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture) -> None:
    from assets.cli import main

    monkeypatch.delenv("PHOENIX_COLLECTOR_ENDPOINT", raising=False)
    monkeypatch.delenv("FLYWHEEL_SOURCES", raising=False)
    assert main(["pull", "phoenix"]) == 2
    assert "no Phoenix server: set pull.phoenix.url in the sources file or PHOENIX_COLLECTOR_ENDPOINT" \
        in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\npull:\n  phoenix:\n    url: localhost:6006\n    projekt: x\n")
    monkeypatch.setenv("FLYWHEEL_SOURCES", str(bad))
    assert main(["pull", "phoenix"]) == 2
    err = capsys.readouterr().err
    assert "pull.phoenix.url" in err and "pull.phoenix.projekt" in err
    assert not (settings.landing / "events" / "phoenix").exists()


def test_the_server_venv_script_names_an_unknown_server_and_make_test_requires_servers_in_ci(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(ROOT / "scripts" / "server-venvs.sh"), "nosuch"], capture_output=True, text=True)
    assert done.returncode == 1 and "unknown server 'nosuch'" in done.stderr
    if shutil.which("make") is None:
        pytest.skip("needs make")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text('#!/bin/sh\necho "pytest ran"\n')
    (bin_dir / "python").chmod(0o755)
    stamp = tmp_path / "stamp"
    stamp.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    env["FLYWHEEL_SKIP_BROWSER"] = "1"
    args = ["make", "-s", "-C", str(ROOT), "test", f"BIN={bin_dir}", f"STAMP={stamp}", "SERVERS=nosuch"]
    skipped = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert skipped.returncode == 0 and "pytest ran" in skipped.stdout
    assert skipped.stdout.count("the tests that drive that server are skipped") == 1
    ci = subprocess.run(args, env={**env, "FLYWHEEL_REQUIRE_SERVERS": "1"}, capture_output=True, text=True, timeout=60)
    assert ci.returncode != 0 and "pytest ran" not in ci.stdout
    assert "FLYWHEEL_REQUIRE_SERVERS=1 and a server venv is missing" in ci.stderr


def test_the_server_venv_script_installs_nothing_when_told_not_to(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    script = shutil.copy(ROOT / "scripts" / "server-venvs.sh", tmp_path / "scripts" / "server-venvs.sh")
    env = {**os.environ, "FLYWHEEL_SERVERS_INSTALL": "0"}
    done = subprocess.run(["bash", str(script), "phoenix"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == ("server-venvs: .venv-phoenix is missing (FLYWHEEL_SERVERS_INSTALL=0: "
                                   "not installing arize-phoenix==20.26.1)")
    assert not (tmp_path / ".venv-phoenix").exists()
