"""Redemption commands for the ``hub`` CLI: hold expiry, key purge, settlement between lines.

``redemption_app`` is mounted on the main command by ``hub.cli`` (``app.add_typer(
redemption_app)`` merges its commands at the top level), giving::

    hub holds expire [--as-of 2026-10-31T12:00:00+08:00]
    hub holds purge-keys [--days 30]
    hub settle --period 2026-10 [--close] [--csv settlement-2026-10.csv]

``holds expire`` works in batches, one transaction each, and is safe to run from cron every
minute beside live traffic. ``holds purge-keys`` deletes redemption idempotency keys older than
``--days`` (at least 30) and is meant to run daily. ``settle`` prints the period's gross and
netted obligations and the tie-out to the clearing accounts, exits 1 if it does not tie out,
and with ``--close`` closes the (ended) period for good.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hub.core.clock import utcnow
from hub.core.db import Database, resolve_url
from hub.core.errors import HubError
from hub.core.settings import load_settings
from hub.loyalty import redemption, settlement
from hub.loyalty._sql import driver
from hub.loyalty.program import configured_program
from hub.loyalty.redemption_keys import KEEP_DAYS, purge_idempotency_keys

redemption_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
holds_app = typer.Typer(help="Redemption holds.", no_args_is_help=True)
redemption_app.add_typer(holds_app, name="holds")

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)
MAX_BATCHES = 10_000  # 5 million holds per run at most: a bound, not a goal


def _database() -> Database:
    try:
        settings = load_settings()
    except HubError as exc:
        errors.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    return Database(resolve_url(settings.database_url, settings.data_dir), pool_size=1)


def _as_of(value: str | None) -> datetime:
    if value is None:
        return utcnow()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        errors.print("[red]error:[/red] --as-of must be ISO 8601, e.g. 2026-10-31T12:00:00+08:00")
        raise typer.Exit(2) from None
    if parsed.tzinfo is None:  # a bare local time means the program's zone
        parsed = parsed.replace(tzinfo=configured_program().timezone)
    return parsed


@holds_app.command("expire")
def holds_expire(
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="ISO instant (default: now).")
    ] = None,
) -> None:
    """Expire pending holds whose hold time passed by --as-of: the points go back."""
    at = _as_of(as_of)

    async def go() -> tuple[int, int, int]:
        program = configured_program()
        db = _database()
        holds = points = timers = 0
        try:
            for _ in range(MAX_BATCHES):
                run = await redemption.run_redemption(
                    db=db,
                    work=lambda s: redemption.expire_holds(session=s, program=program, as_of=at),
                )
                holds, points, timers = holds + run.holds, points + run.points, timers + run.timers
                if run.holds == 0 and run.timers == 0:
                    break
        finally:
            await db.dispose()
        return holds, points, timers

    try:
        holds, points, timers = asyncio.run(go())
    except HubError as exc:
        errors.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    console.print(
        f"holds expire as_of={at.isoformat()} holds={holds} points={points} timers={timers}"
    )


@holds_app.command("purge-keys")
def holds_purge_keys(
    days: Annotated[
        int, typer.Option(help=f"Keep keys this many days (≥ {KEEP_DAYS}).")
    ] = KEEP_DAYS,
) -> None:
    """Delete redemption idempotency keys older than --days."""
    if days < KEEP_DAYS:
        errors.print(f"[red]error:[/red] keys are kept at least {KEEP_DAYS} days")
        raise typer.Exit(2)

    async def go() -> int:
        db = _database()
        try:
            async with db.unit_of_work() as session:
                conn = await driver(session)
                return await purge_idempotency_keys(conn=conn, now=utcnow(), keep_days=days)
        finally:
            await db.dispose()

    console.print(f"holds purge-keys days={days} deleted={asyncio.run(go())}")


@redemption_app.command("settle")
def settle_cmd(
    period: Annotated[str, typer.Option(help="The month to settle, e.g. 2026-10.")],
    close: Annotated[bool, typer.Option("--close", help="Close the period for good.")] = False,
    csv: Annotated[Path | None, typer.Option("--csv", help="Write finance's CSV here.")] = None,
) -> None:
    """Settlement between business lines for a month: gross, netted, tie-out; --close, --csv."""

    async def go() -> tuple[settlement.SettlementReport, bool]:
        program = configured_program()
        db = _database()
        closed_now = False
        try:
            if close:
                async with db.unit_of_work() as session:
                    closed_now = await settlement.close_period(
                        session=session,
                        program=program,
                        period=period,
                        actor="cli",
                        now=utcnow(),
                    )
            async with db.read() as session:
                return await settlement.settle(session=session, period=period), closed_now
        finally:
            await db.dispose()

    try:
        report, closed_now = asyncio.run(go())
    except HubError as exc:
        errors.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    _print(report)
    if close:
        console.print("closed now" if closed_now else "was already closed")
    if csv is not None:
        csv.write_text(settlement.export_csv(report), encoding="utf-8")
        console.print(f"wrote {csv}")
    if not report.ties_out:
        raise typer.Exit(1)


def _print(report: settlement.SettlementReport) -> None:
    console.print(f"settlement period={report.period} state={report.state}")
    gross = Table("issuer", "redeeming line", "points", "amount_fen", title="gross")
    for p in report.pairs:
        gross.add_row(p.issuer_line, p.redeeming_line, str(p.points), str(p.amount_fen))
    console.print(gross)
    net = Table("payer", "payee", "points", "amount_fen", title="netted")
    for n in report.netted:
        net.add_row(n.payer_line, n.payee_line, str(n.points), str(n.amount_fen))
    console.print(net)
    for pos in report.lines:
        mark = "ok" if pos.ties_out else "MISMATCH"
        console.print(
            f"line {pos.line}: net_points={pos.net_points} net_fen={pos.net_fen} "
            f"clearing_points={pos.clearing_points} {mark}"
        )
    console.print(f"tie-out: clearing_sum={report.clearing_sum} ties_out={report.ties_out}")
