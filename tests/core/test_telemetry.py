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


_PROVIDERS = """
import sys
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from hub.core.telemetry import setup_telemetry, tracer
setup_telemetry(sys.argv[1])
with tracer.start_as_current_span("work") as span:
    recording = span.is_recording()
print(isinstance(trace.get_tracer_provider(), TracerProvider),
      isinstance(metrics.get_meter_provider(), MeterProvider), recording)
"""


def _providers(exporter: str) -> str:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _PROVIDERS, exporter], capture_output=True, text=True, check=True
    )
    return done.stdout.split("\n")[0]


def test_nothing_to_export_installs_no_sdk_provider_and_records_no_span() -> None:
    # Spans built for no exporter cost a profile view 5-7 % of its CPU.
    assert _providers("none") == "False False False"


def test_an_exporter_installs_the_sdk_providers_and_spans_record() -> None:
    assert _providers("console") == "True True True"
