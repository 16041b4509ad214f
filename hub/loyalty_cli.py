"""Loyalty commands for the ``hub`` CLI: expiry, tier evaluation, pending release, the ledger.

``loyalty_app`` is mounted on the main command by ``hub.cli`` (``app.add_typer(loyalty_app)``
merges its commands at the top level), giving::

    hub expire --as-of 2027-01-01
    hub tiers evaluate --as-of 2027-01-01
    hub pending release --as-of 2026-03-20
    hub ledger check
    hub ledger accrue

Each job runs in one transaction and is idempotent for its date, so cron can simply run it
again after a failure. ``--as-of`` is a local date in the program's zone (its first instant);
it defaults to today. ``ledger accrue`` (the catch-up after a bulk import) commits batch by
batch instead, and a run after a failure picks up what is still owed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.db import Database, resolve_url
from hub.core.errors import HubError
from hub.core.settings import load_settings
from hub.loyalty import jobs
from hub.loyalty.accrual import AccrualReport
from hub.loyalty.invariants import run_checks
from hub.loyalty.program import configured_program

loyalty_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
tiers_app = typer.Typer(help="Tier (会员等级) evaluation.", no_args_is_help=True)
pending_app = typer.Typer(help="Pending points.", no_args_is_help=True)
ledger_app = typer.Typer(help="The points ledger.", no_args_is_help=True)
loyalty_app.add_typer(tiers_app, name="tiers")
loyalty_app.add_typer(pending_app, name="pending")
loyalty_app.add_typer(ledger_app, name="ledger")

_T = TypeVar("_T")

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)

AsOf = Annotated[
    datetime | None,
    typer.Option("--as-of", formats=["%Y-%m-%d"], help="Local date (default: today)."),
]


def _database() -> Database:
    try:
        settings = load_settings()
    except HubError as exc:
        errors.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    return Database(resolve_url(settings.database_url, settings.data_dir), pool_size=1)


def _run(work: Callable[[Database], Coroutine[Any, Any, _T]]) -> _T:
    """``work`` on the configured database, run to completion and the database closed after;
    a ``HubError`` is printed and exits with 1."""

    async def go() -> _T:
        db = _database()
        try:
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(go())
    except HubError as exc:
        errors.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


def _run_job(
    name: str,
    job: Callable[..., Awaitable[jobs.JobResult]],
    as_of: datetime | None,
) -> None:
    async def go(db: Database) -> jobs.JobResult:
        program = configured_program()
        day = as_of.date() if as_of else datetime.now(program.timezone).date()
        async with db.unit_of_work() as session:
            return await job(session=session, program=program, as_of=day)

    result = _run(go)
    changes = "".join(f" {k}={v}" for k, v in sorted(result.changes.items()))
    console.print(
        f"{name} as_of={result.as_of.isoformat()} items={result.items} "
        f"points={result.points}{changes}"
    )


@loyalty_app.command("expire")
def expire_cmd(as_of: AsOf = None) -> None:
    """Expire points whose validity ended before the start of --as-of (breakage)."""
    _run_job("expire", jobs.expire, as_of)


@tiers_app.command("evaluate")
def tiers_evaluate(as_of: AsOf = None) -> None:
    """Close tier evaluation periods that ended by --as-of: keep (保级) or downgrade."""
    _run_job("tiers evaluate", jobs.evaluate_tiers, as_of)


@pending_app.command("release")
def pending_release(as_of: AsOf = None) -> None:
    """Make pending points available when their return window closed by --as-of."""
    _run_job("pending release", jobs.release_pending, as_of)


@ledger_app.command("check")
def ledger_check() -> None:
    """Run every ledger invariant; print each; exit 1 if any is violated."""

    async def go(db: Database) -> dict[str, list[str]]:
        async with db.read() as session:
            return await _checks(session)

    results = _run(go)
    for name, found in results.items():
        mark = "[green]ok[/green]" if not found else f"[red]{len(found)} problem(s)[/red]"
        console.print(f"{name}: {mark}")
        for detail in found:
            console.print(f"  - {detail}")
    if any(results.values()):
        raise typer.Exit(1)


@ledger_app.command("accrue")
def ledger_accrue() -> None:
    """Accrue what landed activities still owe: the catch-up after `hub import --bulk`.

    Run it after `hub identity resolve`: activities whose record has no member yet are
    skipped and counted, and picked up by the next run. Safe to stop and run again."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from hub.loyalty.accrual import accrue_owed

    async def go(db: Database) -> AccrualReport:
        with Progress(
            TextColumn("accruing, by activity id"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("accrue", total=None)
            return await accrue_owed(
                db=db,
                program=configured_program(),
                progress=lambda done, last: bar.update(task, completed=done, total=last),
            )

    report = _run(go)
    skipped = "".join(f" skipped_{k}={v}" for k, v in sorted(report.skipped.items()))
    console.print(
        f"accrue accrued={report.accrued} points={report.points} "
        f"pending_points={report.pending_points} growth={report.growth} "
        f"reversed={report.reversed} points_reversed={report.points_reversed}{skipped}"
    )
    if report.skipped.get("no_member_yet"):
        console.print(
            f"{report.skipped['no_member_yet']:,} activities have no member to earn them: "
            "their record is not resolved yet (run `hub identity resolve`, then this again) "
            "or was never imported (a sale without a member card)"
        )


async def _checks(session: AsyncSession) -> dict[str, list[str]]:
    from hub.loyalty.redemption_invariants import run_redemption_checks

    results = {**await run_checks(session), **await run_redemption_checks(session)}
    return {k: [p.detail for p in v] for k, v in results.items()}
