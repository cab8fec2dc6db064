"""MLflow Tracing as a pulled source (flywheel/sources/mlflow.py), against a real `mlflow server`.

A session fixture starts `mlflow server` from .venv-mlflow (scripts/server-venvs.sh mlflow) on
127.0.0.1 with a SQLite backend in a temporary folder; a writer run with that venv's own mlflow
client logs traces (CHAT_MODEL and LLM spans, an error, a trace with no model span) and
assessments (human feedback, a human expectation, an LLM judge's feedback, an unknown label), and
later overrides a verdict. The tests pull, check the landed events and interventions field by
field against what the mlflow client itself reads back, re-pull (nothing lands), pull the
override (a new version of its record), check the quarantine's reasons and that the counts
reconcile, then store everything with the pipeline. Without .venv-mlflow the tests skip with one
line saying why; with FLYWHEEL_REQUIRE_SERVERS=1 (CI) they fail instead.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from flywheel.config import Settings
from flywheel.sources import load_sources
from flywheel.sources.mlflow import MlflowServer, mlflow_config
from flywheel.sources.pull import pull, source_dir
from tests.conftest import query, run_outcomes, run_pipeline

ROOT = Path(__file__).parents[1]
VENV = ROOT / ".venv-mlflow"
EXPERIMENT = "flywheel-test"
START_TIMEOUT_S = 180.0  # the server starts in 6-50 s here; the machine is often loaded

# Run by .venv-mlflow's python: `seed` logs the traces and assessments, `more` overrides the first
# trace's verdict and logs a fifth trace; both print what the mlflow client reads back.
WRITER = r'''
import json, sys
import mlflow
from mlflow.entities import AssessmentSource, AssessmentSourceType, SpanType

uri, experiment, phase, prior = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
mlflow.set_tracking_uri(uri)
mlflow.set_experiment(experiment)
HUMAN = AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id="ana@example.com")
BO = AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id="bo@example.com")
JUDGE = AssessmentSource(source_type=AssessmentSourceType.LLM_JUDGE, source_id="gpt-judge")

def call(question, answer, tags, span_type=SpanType.CHAT_MODEL, fail=False, model_span=True):
    @mlflow.trace(name="support_agent", span_type=SpanType.AGENT)
    def run():
        mlflow.update_current_trace(tags=tags)
        if not model_span:
            with mlflow.start_span(name="lookup_order", span_type=SpanType.TOOL) as span:
                span.set_inputs({"order": 7}); span.set_outputs({"status": "shipped"})
            return "shipped"
        with mlflow.start_span(name="chat gpt-4o-mini", span_type=span_type) as span:
            span.set_inputs({"messages": [{"role": "system", "content": "be brief"},
                                          {"role": "user", "content": question}]})
            span.set_attributes({"gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 12,
                                 "gen_ai.usage.output_tokens": 30, "confidence": 0.8})
            if fail:
                raise RuntimeError("upstream timeout")
            span.set_outputs({"choices": [{"message": {"role": "assistant", "content": answer}}]})
        return answer
    try:
        run()
    except RuntimeError:
        pass
    return mlflow.get_last_active_trace_id()

if phase == "seed":
    t1 = call("Where is my refund?", "It was sent.", {"scenario": "refund", "prompt_version": "v3",
                                                    "autonomy_level": "gated"})
    t2 = call("Refund 20 EUR?", "Maybe.", {"scenario": "refund"}, span_type=SpanType.LLM)
    t3 = call("Why this charge?", None, {"scenario": "billing"}, fail=True)
    t4 = call("Where is order 7?", None, {"scenario": "orders"}, model_span=False)
    mlflow.log_feedback(trace_id=t1, name="review", value="accepted", source=HUMAN, rationale="fine")
    mlflow.log_expectation(trace_id=t2, name="expected_response", value="Your refund of 20 EUR is on its way.",
                           source=HUMAN)
    mlflow.log_feedback(trace_id=t3, name="review", value="rejected", source=JUDGE)
    mlflow.log_feedback(trace_id=t3, name="review", value="maybe", source=HUMAN)
    mlflow.log_feedback(trace_id=t4, name="review", value="accepted", source=HUMAN)
    ids = [t1, t2, t3, t4]
else:
    t1 = prior["traces"][0]["trace_id"]
    first = next(a for a in prior["traces"][0]["assessments"] if a["name"] == "review")
    mlflow.override_feedback(trace_id=t1, assessment_id=first["assessment_id"], value="reverted",
                             rationale="rolled back", source=BO)
    t5 = call("Cancel my order", "Cancelled.", {"scenario": "orders"})
    mlflow.log_feedback(trace_id=t5, name="review", value="escalated", source=HUMAN)
    ids = [t1, t5]

out = []
for tid in ids:
    trace = mlflow.get_trace(tid)
    out.append({
        "trace_id": tid, "request_time_ms": trace.info.request_time,
        "spans": [{"span_id": s.span_id, "name": s.name, "span_type": s.span_type,
                   "start_ns": s.start_time_ns, "end_ns": s.end_time_ns} for s in trace.data.spans],
        "assessments": [{"assessment_id": a.assessment_id, "name": a.name, "valid": a.valid,
                         "overrides": a.overrides, "last_update_time_ms": a.last_update_time_ms}
                        for a in trace.info.assessments]})
print(json.dumps({"traces": out}))
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _missing(why: str) -> None:
    if os.environ.get("FLYWHEEL_REQUIRE_SERVERS") == "1":
        pytest.fail(f"FLYWHEEL_REQUIRE_SERVERS=1 and {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running `mlflow server` (SQLite backend, artifacts in tmp) on a free port; stopped after."""
    program = VENV / "bin" / "mlflow"
    if not program.exists():
        _missing(f"{program} is missing: run scripts/server-venvs.sh mlflow (or make servers) to test the MLflow pull")
    work = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
           # no huey job runner: 2 processes and ~570 MB instead of 10 and ~2.7 GB (tracing works without it)
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(program), "server", "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
         "--artifacts-destination", str(work / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as r:
                    if r.read().strip() == b"OK":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (work / "server.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"mlflow server did not start (exit {proc.poll()}) within {START_TIMEOUT_S:.0f} s:\n{tail}")
            time.sleep(0.5)
        yield uri
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        log.close()


def _write(uri: str, phase: str, prior: dict[str, Any] | None, tmp: Path, experiment: str = EXPERIMENT) -> dict[str, Any]:
    script = tmp / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run([str(VENV / "bin" / "python"), str(script), uri, experiment, phase, json.dumps(prior or {})],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def seeded(mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The first four traces and their assessments, as the mlflow client reads them back."""
    return _write(mlflow_uri, "seed", None, tmp_path_factory.mktemp("writer"))


def _jsonl(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for p in sorted(folder.glob("*.jsonl")) for line in p.read_text().splitlines()]


def _iso_ns(ns: int) -> str:
    t = datetime.fromtimestamp(ns // 10**9, timezone.utc).replace(microsecond=(ns % 10**9) // 1000)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms // 1000, timezone.utc).replace(microsecond=ms % 1000 * 1000)


def _iso_ms(ms: int) -> str:
    return f"{_ms(ms):%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _model_span(trace: dict[str, Any]) -> dict[str, Any]:
    [span] = [s for s in trace["spans"] if s["span_type"] in ("LLM", "CHAT_MODEL")]
    return span


def test_pull_incremental_idempotent_and_stored(mlflow_uri: str, seeded: dict[str, Any], settings: Settings,
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t1, t2, t3, t4 = seeded["traces"]
    config = mlflow_config(load_sources(None))
    source = MlflowServer(config, mlflow_uri, [EXPERIMENT], page_size=2)  # 2 a page: 4 traces make 2 pages

    # --- first pull: three model spans are events; five assessments, two of them mappable ------
    report = pull(settings, source, config)
    assert report.reconciles()
    assert (report.fetched["events"], report.landed["events"]) == (3, 3)
    assert (report.fetched["interventions"], report.landed["interventions"], report.quarantined["interventions"]) \
        == (5, 2, 3)
    assert dict(report.reasons) == {"not_human": 1, "unknown_label": 1, "no_event_for_target": 1}
    # the high-water mark: the start of the latest trace that gave an event (t4 has no model span)
    assert report.hwm_after == _ms(t3["request_time_ms"]).isoformat().replace("+00:00", "Z")
    events = {r["event_id"]: r for r in _jsonl(settings.landing / "events" / "mlflow")}
    s1, s2, s3 = _model_span(t1), _model_span(t2), _model_span(t3)
    assert set(events) == {s1["span_id"], s2["span_id"], s3["span_id"]}
    e1 = events[s1["span_id"]]
    assert e1 == {
        "event_id": s1["span_id"], "occurred_at": _iso_ns(s1["start_ns"]), "scenario": "refund",
        "model": "gpt-4o-mini", "prompt_version": "v3", "confidence": 0.8, "autonomy_level": "gated",
        "status": "ok", "input_text": "Where is my refund?", "output_text": "It was sent.",
        "latency_ms": (s1["end_ns"] - s1["start_ns"]) / 1e6, "input_tokens": 12, "output_tokens": 30,
        "trace_id": t1["trace_id"],
        "attributes": e1["attributes"],
    }
    assert {k: v for k, v in e1["attributes"]["mlflow"].items() if k != "cost"} == {  # cost: the server's price table
        "span_name": "chat gpt-4o-mini", "span_type": "CHAT_MODEL", "trace_state": "OK",
        "trace_name": "support_agent", "experiment_id": "1"}
    e2, e3 = events[s2["span_id"]], events[s3["span_id"]]
    assert (e2["scenario"], e2["autonomy_level"], e2["attributes"]["mlflow"]["span_type"], "prompt_version" in e2) \
        == ("refund", "assist", "LLM", False)
    assert (e3["scenario"], e3["status"], e3["input_text"], "output_text" in e3) == \
        ("billing", "error", "Why this charge?", False)
    assert e3["attributes"]["mlflow"]["status_message"] == "RuntimeError: upstream timeout"

    interventions = {r["event_id"]: r for r in _jsonl(settings.landing / "interventions" / "mlflow")}
    [a1] = t1["assessments"]
    [a2] = t2["assessments"]
    when1, when2 = _iso_ms(a1["last_update_time_ms"]), _iso_ms(a2["last_update_time_ms"])
    assert interventions == {
        s1["span_id"]: {"intervention_id": f"{a1['assessment_id']}@{when1}", "event_id": s1["span_id"],
                        "occurred_at": when1, "action": "accepted", "reviewer_id": "ana@example.com",
                        "comment": "fine"},
        s2["span_id"]: {"intervention_id": f"{a2['assessment_id']}@{when2}", "event_id": s2["span_id"],
                        "occurred_at": when2, "action": "edited",
                        "final_text": "Your refund of 20 EUR is on its way.", "reviewer_id": "ana@example.com"},
    }
    quarantine = {r["record_id"]: r for r in _jsonl(source_dir(settings, "mlflow") / "quarantine")}
    judge, maybe = sorted(t3["assessments"], key=lambda a: a["last_update_time_ms"])
    [orphan] = t4["assessments"]
    assert {k: (v["reason"], v["kind"]) for k, v in quarantine.items()} == {
        judge["assessment_id"]: ("not_human", "interventions"),
        maybe["assessment_id"]: ("unknown_label", "interventions"),
        orphan["assessment_id"]: ("no_event_for_target", "interventions")}
    assert quarantine[judge["assessment_id"]]["raw"]["source"]["source_type"] == "LLM_JUDGE"
    assert quarantine[maybe["assessment_id"]]["raw"]["source"]["source_id"].startswith("r_")  # pseudonymised

    # --- a second pull lands nothing: every record is a duplicate ------------------------------
    again = pull(settings, source, config)
    assert again.reconciles() and again.files == []
    assert (sum(again.landed.values()), sum(again.quarantined.values())) == (0, 0)
    assert (again.duplicates["events"], again.duplicates["interventions"]) == (3, 5)

    # --- a corrected verdict (override) and a new trace: each lands once ------------------------
    more = _write(mlflow_uri, "more", seeded, tmp_path)
    t1b, t5 = more["traces"]
    old, new = sorted(t1b["assessments"], key=lambda a: a["last_update_time_ms"])
    assert (old["valid"], new["overrides"]) == (False, a1["assessment_id"])
    third = pull(settings, source, config)
    assert third.reconciles()
    assert (third.landed["events"], third.duplicates["events"]) == (1, 3)
    assert (third.landed["interventions"], third.duplicates["interventions"], third.quarantined["interventions"]) \
        == (2, 4, 0)
    interventions = _jsonl(settings.landing / "interventions" / "mlflow")
    when_new = _iso_ms(new["last_update_time_ms"])
    # the override is a new version of the first verdict's record: same record id, a later version
    assert {"intervention_id": f"{a1['assessment_id']}@{when_new}", "event_id": s1["span_id"],
            "occurred_at": when_new, "action": "reverted", "reviewer_id": "bo@example.com",
            "comment": "rolled back"} in interventions
    s5 = _model_span(t5)
    assert [r["action"] for r in interventions if r["event_id"] == s5["span_id"]] == ["escalated"]
    assert len(interventions) == 4

    # --- `flywheel run`'s pipeline stores them, and the outcomes follow the verdicts ------------
    day = datetime.fromtimestamp(t1["request_time_ms"] / 1000, timezone.utc).date()
    run_pipeline(settings)
    run_outcomes(settings, sorted({day, datetime.fromtimestamp(t5["request_time_ms"] / 1000, timezone.utc).date()}))
    assert query(settings, "SELECT count(*) FROM ingest.quarantine") == [(0,)]
    assert query(settings, "SELECT count(*) FROM ingest.events") == [(4,)]
    assert query(settings, "SELECT count(*) FROM ingest.interventions") == [(4,)]
    outcomes = dict(query(settings, "SELECT event_id, outcome FROM outcomes.event_outcomes"))
    assert outcomes == {s1["span_id"]: "reverted", s2["span_id"]: "edited", s3["span_id"]: "awaiting_review",
                        s5["span_id"]: "escalated"}


def test_the_command_pulls_and_names_a_missing_experiment(mlflow_uri: str, settings: Settings, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    from assets.cli import main

    _write(mlflow_uri, "seed", None, tmp_path, experiment="flywheel-cli")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    assert main(["pull", "mlflow", "--experiment", "no-such-experiment"]) == 2
    assert "has no experiment named 'no-such-experiment'" in capsys.readouterr().err
    assert main(["pull", "mlflow", "--experiment", "flywheel-cli"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mlflow: high-water mark (none) -> ")
    assert "  events: fetched 3 = landed 3 + duplicates 0 + quarantined 0\n" in out
    assert "  interventions: fetched 5 = landed 2 + duplicates 0 + quarantined 3\n" in out
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert main(["pull", "mlflow", "--experiment", "flywheel-cli"]) == 2
    assert "MLFLOW_TRACKING_URI" in capsys.readouterr().err


def test_values_times_and_keys_read_without_a_server(tmp_path: Path, settings: Settings,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture) -> None:
    """What needs no server: assessment values by type, one version text however the server wrote
    the time, nested attribute keys, OTLP-JSON values, and the refusals of a bad section or URI."""
    from assets.cli import main
    from flywheel.sources.mlflow import _ms_iso, any_value, assessment_value, span_hex
    from flywheel.sources.pull import parse_time
    from flywheel.sources.verdicts import nest_dotted as nest

    assert [assessment_value(a) for a in (
        {"feedback": {"value": "edited"}}, {"feedback": {"value": True}}, {"feedback": {"value": 4}},
        {"feedback": {"error": {"error_code": "TIMEOUT"}}}, {"expectation": {"value": "The fix."}},
        {"expectation": {"value": ["fact a", "fact b"]}})] == [
        ("label", "edited"), ("boolean", True), ("score", 4.0), ("text", None), ("correction", "The fix."),
        ("text", '["fact a", "fact b"]')]
    assert {_ms_iso(parse_time(t)) for t in ("2026-12-06T06:33:15.1Z", "2026-12-06T06:33:15.100Z",
                                              "2026-12-06T06:33:15.100000+00:00")} == {"2026-12-06T06:33:15.100Z"}
    assert _ms_iso(parse_time("2026-12-06T06:33:15Z")) == "2026-12-06T06:33:15.000Z"
    assert nest({"gen_ai.request.model": "m", "gen_ai.system": "openai", "confidence": 0.8, "a": 1, "a.b": 2}) == {
        "gen_ai": {"request": {"model": "m"}, "system": "openai"}, "confidence": 0.8, "a": 1}
    assert any_value({"kvlist_value": {"values": [{"key": "n", "value": {"int_value": "12"}},
                                                  {"key": "xs", "value": {"array_value": {"values": [
                                                      {"double_value": 0.5}, {"bool_value": False}]}}}]}}) \
        == {"n": 12, "xs": [0.5, False]}
    assert (span_hex("FPxutKEcHR8="), span_hex("14fc6eb4a11c1d1f"), span_hex("not an id")) == \
        ("14fc6eb4a11c1d1f", "14fc6eb4a11c1d1f", None)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    assert main(["pull", "mlflow"]) == 2
    assert "is not an http(s) server" in capsys.readouterr().err
    bad = tmp_path / "sources.yaml"
    bad.write_text("version: 1\npull:\n  mlflow:\n    experiments: support-bot\n")
    monkeypatch.setenv("FLYWHEEL_SOURCES", str(bad))
    assert main(["pull", "mlflow"]) == 2
    assert "pull.mlflow.experiments: Input should be a valid list" in capsys.readouterr().err
    assert not (settings.landing / "events" / "mlflow").exists()


def _kv(key: str, value: Any) -> Any:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def test_openinference_spans_sent_over_otlp_map_too(mlflow_uri: str, settings: Settings) -> None:
    """An OpenInference-instrumented app exporting OTLP to MLflow (`POST /v1/traces` with the
    experiment header): the LLM spans become events through the default candidates (metadata
    scenario, else the root agent span's `agent.name`; `llm.model_name`, `input.value`,
    `llm.token_count.*`, `llm.prompt_template.version`)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    create = urllib.request.Request(f"{mlflow_uri}/api/2.0/mlflow/experiments/create", method="POST",
                                    data=json.dumps({"name": "flywheel-otlp"}).encode(),
                                    headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(create, timeout=60) as r:
        experiment_id = json.load(r)["experiment_id"]
    t0 = 1_796_000_000_000_000_000  # 2026-11-30T00:53:20Z
    trace_id, root_id, first_id, second_id = bytes(range(16)), b"\x01" * 8, b"\x02" * 8, b"\x03" * 8
    common = {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "input.value": "Where is my refund?"}
    spans = [
        Span(trace_id=trace_id, span_id=root_id, name="agent", start_time_unix_nano=t0, end_time_unix_nano=t0 + 900_000_000,
             attributes=[_kv("openinference.span.kind", "AGENT"), _kv("agent.name", "refund-agent")]),
        Span(trace_id=trace_id, span_id=first_id, parent_span_id=root_id, name="ChatCompletion",
             start_time_unix_nano=t0 + 1_000, end_time_unix_nano=t0 + 250_001_000,
             attributes=[_kv(k, v) for k, v in {**common, "output.value": "It was sent.", "llm.token_count.prompt": 10,
                                               "llm.token_count.completion": 20, "llm.prompt_template.version": "v7",
                                               "metadata": json.dumps({"scenario": "refund", "confidence": 0.9})}.items()]),
        Span(trace_id=trace_id, span_id=second_id, parent_span_id=root_id, name="ChatCompletion",
             start_time_unix_nano=t0 + 300_000_000, end_time_unix_nano=t0 + 800_000_000,
             status={"code": 2, "message": "rate limited"}, attributes=[_kv(k, v) for k, v in common.items()]),
    ]
    body = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource={"attributes": [_kv("service.name", "support-bot")]},
        scope_spans=[ScopeSpans(scope={"name": "openinference"}, spans=spans)])]).SerializeToString()
    send = urllib.request.Request(f"{mlflow_uri}/v1/traces", data=body, method="POST",
                                  headers={"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": experiment_id})
    with urllib.request.urlopen(send, timeout=60) as r:
        assert r.status == 200

    config = mlflow_config(load_sources(None))
    source = MlflowServer(config, mlflow_uri, ["flywheel-otlp"])
    deadline = time.monotonic() + 60  # ingestion may lag the response; poll
    while not list(source.traces(None)) and time.monotonic() < deadline:
        time.sleep(0.5)
    report = pull(settings, source, config)
    assert (report.landed["events"], report.reconciles()) == (2, True)
    events = {r["event_id"]: r for r in _jsonl(settings.landing / "events" / "mlflow")}
    first, second = events[first_id.hex()], events[second_id.hex()]
    assert {k: v for k, v in first.items() if k != "attributes"} == {
        "event_id": first_id.hex(), "occurred_at": "2026-11-30T00:53:20.000001Z", "scenario": "refund",
        "model": "gpt-4o-mini", "prompt_version": "v7", "confidence": 0.9, "autonomy_level": "assist", "status": "ok",
        "input_text": "Where is my refund?", "output_text": "It was sent.", "latency_ms": 250.0,
        "input_tokens": 10, "output_tokens": 20, "trace_id": "tr-" + trace_id.hex()}
    assert first["attributes"]["mlflow"]["span_type"] == "LLM"
    assert {k: second.get(k) for k in ("scenario", "status", "latency_ms", "output_text", "prompt_version")} == {
        "scenario": "refund-agent", "status": "error", "latency_ms": 500.0, "output_text": None, "prompt_version": None}
    assert report.hwm_after == "2026-11-30T00:53:20Z"


class _Recorded(MlflowServer):
    """The server's answers replayed: the REST shapes as mlflow 3.17.2 returned them here."""

    def __init__(self, traces: list[dict[str, Any]], spans: dict[str, list[dict[str, Any]]]) -> None:
        super().__init__(mlflow_config(load_sources(None)), "http://127.0.0.1:9", ["e"])
        self.recorded, self.recorded_spans = traces, spans
        self.asked: list[list[str]] = []

    def _call(self, method: str, path: str, body: Any = None, query: list[tuple[str, str]] | None = None) -> Any:
        if path.endswith("get-by-name"):
            return {"experiment": {"experiment_id": "1"}}
        if path.endswith("traces/search"):
            return {"traces": self.recorded}
        ids = [v for _, v in query or []]
        self.asked.append(ids)
        return {"traces": [{"trace_info": {"trace_id": i}, "spans": self.recorded_spans[i]} for i in ids]}


def _recorded_span(span_id: str, kind: str, parent: str | None = None) -> dict[str, Any]:
    import base64

    span = {"trace_id": "lCLbvV7Lis0oi/1yd45O7w==", "span_id": base64.b64encode(bytes.fromhex(span_id)).decode(),
            "name": kind.lower(), "start_time_unix_nano": 1796538795084685783, "end_time_unix_nano": 1796538795085817369,
            "attributes": [{"key": "mlflow.spanType", "value": {"string_value": kind}},
                           {"key": "mlflow.llm.model", "value": {"string_value": "gpt-4o-mini"}}],
            "status": {"code": "STATUS_CODE_OK"}}
    if parent:
        span["parent_span_id"] = base64.b64encode(bytes.fromhex(parent)).decode()
    return span


def test_in_progress_traces_wait_and_span_assessments_find_their_event(settings: Settings) -> None:
    """A trace still IN_PROGRESS is left for a later pull (its spans are not all in); an assessment
    on the agent span goes to the model span under it, one on a span not in the trace is
    quarantined `span_not_found`."""
    human = {"source_type": "HUMAN", "source_id": "ana@example.com"}
    done = {"trace_id": "tr-1", "request_time": "2026-12-06T06:33:15.084Z", "state": "OK",
            "tags": {"scenario": "refund"}, "assessments": [
                {"assessment_id": "a-1", "assessment_name": "review", "source": human, "span_id": "1111111111111111",
                 "last_update_time": "2026-12-06T06:34:00.5Z", "feedback": {"value": "rejected"}, "valid": True},
                {"assessment_id": "a-2", "assessment_name": "review", "source": human, "span_id": "9999999999999999",
                 "last_update_time": "2026-12-06T06:34:01Z", "feedback": {"value": "accepted"}, "valid": True}]}
    running = {"trace_id": "tr-2", "request_time": "2026-12-06T06:33:16Z", "state": "IN_PROGRESS",
               "tags": {"scenario": "refund"}}
    source = _Recorded([done, running], {"tr-1": [_recorded_span("1111111111111111", "AGENT"),
                                                  _recorded_span("2222222222222222", "CHAT_MODEL", "1111111111111111")]})
    report = pull(settings, source, source.config)
    assert source.asked == [["tr-1"]]
    assert (report.landed["events"], report.landed["interventions"], dict(report.reasons)) == \
        (1, 1, {"span_not_found": 1})
    [intervention] = _jsonl(settings.landing / "interventions" / "mlflow")
    assert intervention == {"intervention_id": "a-1@2026-12-06T06:34:00.500Z", "event_id": "2222222222222222",
                            "occurred_at": "2026-12-06T06:34:00.500Z", "action": "rejected",
                            "reviewer_id": "ana@example.com"}


def test_credentials_come_only_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel.sources import SourcesError
    from flywheel.sources.mlflow import _auth_headers

    for name in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert _auth_headers() == {}
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ana")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret")
    assert _auth_headers() == {"Authorization": "Basic YW5hOnMzY3JldA=="}  # base64("ana:s3cret")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok")
    assert _auth_headers() == {"Authorization": "Bearer tok"}
    bad = tmp_path / "sources.yaml"
    bad.write_text("version: 1\npull:\n  mlflow:\n    tracking_uri: http://127.0.0.1:5000\n    token: tok\n")
    with pytest.raises(SourcesError, match="pull.mlflow.token: Extra inputs are not permitted"):
        mlflow_config(load_sources(bad))
