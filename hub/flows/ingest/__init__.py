"""Ingestion: canonical records from any connector land idempotently, batch by batch."""

from hub.flows.ingest.pipeline import (
    DEFAULT_BATCH,
    IngestHooks,
    LandedBatch,
    NoHooks,
    finish_run,
    ingest,
    start_run,
)
from hub.flows.ingest.report import FileCounts, IngestReport
from hub.flows.ingest.worker import bulk_collector

__all__ = [
    "DEFAULT_BATCH",
    "FileCounts",
    "IngestHooks",
    "IngestReport",
    "LandedBatch",
    "NoHooks",
    "bulk_collector",
    "finish_run",
    "ingest",
    "start_run",
]
