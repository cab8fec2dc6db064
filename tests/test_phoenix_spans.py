"""A Phoenix span as the REST API returns it, mapped without a server: its attributes reach
flywheel.otlp through the one OTLP AnyValue encoder (`flywheel.otlp.encode_value`), so a null
inside an attribute stays null and a NaN does not make the span unreadable."""

from __future__ import annotations

import math
from typing import Any

from flywheel.sources.phoenix import map_span, phoenix_config

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def _span(attributes: dict[str, Any]) -> dict[str, Any]:
    return {"context": {"trace_id": TRACE, "span_id": SPAN}, "name": "llm", "span_kind": "LLM",
            "start_time": "2025-03-01T10:00:00+00:00", "end_time": "2025-03-01T10:00:01.5+00:00",
            "status_code": "OK", "attributes": {"flywheel.scenario": "refund_request", **attributes}}


def test_nested_nulls_stay_null_not_the_text_null():
    event, why = map_span(_span({"llm": {"model_name": "gpt-x", "invocation_parameters": None},
                                 "metadata": {"tags": ["a", None]}}), "p", phoenix_config())
    assert why == ""
    assert event["event_id"] == f"{TRACE}-{SPAN}" and event["model"] == "gpt-x" and event["latency_ms"] == 1500.0
    # before: the private encoder wrote a nested None as the string "null"
    assert event["attributes"]["llm"] == {"model_name": "gpt-x", "invocation_parameters": None}
    assert event["attributes"]["metadata"] == {"tags": ["a", None]}


def test_a_nan_attribute_does_not_make_the_span_unreadable():
    event, why = map_span(_span({"llm": {"model_name": "gpt-x"}, "metadata": {"score": float("nan")}}), "p",
                          phoenix_config())
    # before: NaN went into the JSON text as a bare NaN token and the span was refused as "not JSON"
    assert why == "" and event["scenario"] == "refund_request"
    assert math.isnan(event["attributes"]["metadata"]["score"])
