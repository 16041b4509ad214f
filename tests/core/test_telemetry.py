from __future__ import annotations

import json
import logging

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hub.core.telemetry import JsonFormatter, reset_request_id, set_request_id


def test_json_log_lines_carry_trace_and_request_ids_and_mask_pii() -> None:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    token = set_request_id("req-1")
    try:
        with tracer.start_as_current_span("work") as span:
            record = logging.LogRecord(
                "hub.x", logging.INFO, __file__, 1, "lookup %s", ("13812345678",), None
            )
            line = json.loads(JsonFormatter().format(record))
            trace_id = format(span.get_span_context().trace_id, "032x")
    finally:
        reset_request_id(token)
    assert line["trace_id"] == trace_id
    assert line["request_id"] == "req-1"
    assert "13812345678" not in line["msg"]
    assert line["msg"] == "lookup 138****5678"
    assert trace.get_current_span().get_span_context().is_valid is False
