"""Running an import: files → connectors → the ingest pipeline → a report.

Shared by `hub import` and `POST /ingest/{source}`. A file the chosen connector does not
recognise is refused with the reason and the other files still land; a bad row is a rejected
row; nothing stops the import but an error in the hub itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from connectors import generic_csv
from connectors.registry import Plan, parse_path, plan
from hub.core.db import Database
from hub.core.errors import ImportFormatError
from hub.core.pii import KeyRing
from hub.core.records import Item
from hub.flows.ingest import (
    DEFAULT_BATCH,
    IngestHooks,
    IngestReport,
    bulk_collector,
    finish_run,
    ingest,
    start_run,
)

__all__ = ["ingest_hooks", "run_import"]


def ingest_hooks(keyring: KeyRing) -> IngestHooks:
    """Identity, then loyalty, after each landed batch (``hub.flows.hooks.default_hooks``).
    Imported here on first use: identity's matching engine (pypinyin's dictionaries) takes
    half a second to import, which `hub import --bulk` never needs."""
    from hub.flows.hooks import default_hooks

    return default_hooks(keyring)


def _items(plans: Sequence[Plan], report: IngestReport, mapping: Any) -> Iterator[tuple[str, Item]]:
    for p in plans:
        report.chosen[p.path.name] = p.connector
        try:
            for item in parse_path(p.connector, p.path, mapping=mapping, items=p.items, fast=True):
                yield p.path.name, item
        except ImportFormatError as exc:
            # Raised on the header, before any row: this file is refused, the rest go on.
            report.refuse(p.path.name, exc.message)


async def run_import(
    *,
    db: Database,
    keyring: KeyRing,
    connector: str,
    paths: Sequence[Path],
    actor: str,
    mapping_path: Path | None = None,
    hooks: IngestHooks | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int, int], None] | None = None,
    on_plan: Callable[[list[Plan]], None] | None = None,
    parallel: bool = False,
) -> IngestReport:
    """``parallel``: prepare batches in a forked worker (the CLI; never inside a server)."""
    mapping = generic_csv.load_mapping(mapping_path) if mapping_path is not None else None
    plans, refused = plan(connector, paths, mapping=mapping)
    if on_plan is not None:
        on_plan(plans)
    report = IngestReport(connector=connector)
    for path, reason in refused:
        report.refuse(path.name, reason)
    report.import_run_id = await start_run(db=db, actor=actor, connector=connector)
    # ``parallel`` is the CLI's: the process runs this import alone, so the collector is set
    # for it (never inside a server, where the thresholds would be every request's).
    collector = bulk_collector() if parallel else contextlib.nullcontext()
    try:
        with collector:
            await ingest(
                db=db,
                keyring=keyring,
                items=_items(plans, report, mapping),
                report=report,
                hooks=hooks,
                batch_size=batch_size,
                progress=progress,
                parallel=parallel,
                async_commit=True,  # finish_run's synchronous commit makes every batch durable
                optimistic=True,  # a file's activities are mostly new
            )
    except BaseException:
        report.failed = report.failed or "interrupted"
        await finish_run(db=db, report=report)
        raise
    await finish_run(db=db, report=report)
    return report
