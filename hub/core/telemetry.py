"""Traces, metrics and JSON logs. Nothing here ever writes a PII value.

- ``setup_telemetry(exporter=...)`` installs OpenTelemetry tracer and meter providers with the
  configured exporter (``none``, ``console`` or ``otlp``; OTLP reads the standard
  ``OTEL_EXPORTER_OTLP_*`` variables).
- Logs are one JSON object per line with the trace id, span id and request id; a filter masks
  anything that looks like a phone, ID number or email in the message as a last line of defence
  (the first is never passing PII to a logger).
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

from hub.core.pii import mask_text

SERVICE_NAME = "member-hub"
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_configured = False

tracer = trace.get_tracer("hub")
meter = metrics.get_meter("hub")


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(value: str | None) -> object:
    return _request_id.set(value)


def reset_request_id(token: object) -> None:
    _request_id.reset(token)  # type: ignore[arg-type]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        span = trace.get_current_span().get_span_context()
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": mask_text(record.getMessage(), limit=2000),
        }
        if span.is_valid:
            payload["trace_id"] = format(span.trace_id, "032x")
            payload["span_id"] = format(span.span_id, "016x")
        rid = current_request_id()
        if rid:
            payload["request_id"] = rid
        if record.exc_info and record.exc_info[0] is not None:
            payload["error"] = record.exc_info[0].__name__
        return json.dumps(payload, ensure_ascii=False)


def setup_logging(level: str = "INFO", json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # it logs command lines at INFO


def setup_telemetry(
    exporter: str = "none",
    *,
    span_exporter: SpanExporter | None = None,
    metric_reader: MetricReader | None = None,
) -> None:
    """Install providers once per process; tests pass an in-memory exporter/reader.

    With nothing to export to (``none`` and no test exporter or reader) no SDK provider is
    installed: the API's no-op tracer and meter stay, so spans and measurements cost nothing.
    An SDK provider without a processor still built, timed and ended every span for nobody:
    5-7 % of the CPU of a profile view. With an exporter the SDK reads the standard
    ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` variables (docs/operators.md).
    """
    global _configured
    if _configured:
        return
    resource = Resource.create({"service.name": SERVICE_NAME})
    processors: list[SpanProcessor] = []
    readers: list[MetricReader] = []
    if span_exporter is not None:
        processors.append(SimpleSpanProcessor(span_exporter))
    elif exporter == "console":
        processors.append(BatchSpanProcessor(ConsoleSpanExporter()))
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processors.append(BatchSpanProcessor(OTLPSpanExporter()))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    if metric_reader is not None:
        readers.append(metric_reader)
    if processors:
        provider = TracerProvider(resource=resource)
        for processor in processors:
            provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
    if readers:
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    _configured = True
