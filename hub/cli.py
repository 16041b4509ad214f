"""The ``hub`` command: serve, migrate, demo, token (and the commands later issues add)."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from hub.core.db import Database, resolve_url
from hub.core.errors import HubError
from hub.core.keycheck import check_ready
from hub.core.migrate import head_revision, upgrade
from hub.core.settings import Settings, load_settings
from hub.core.tokens import Role, issue_token

if TYPE_CHECKING:
    from connectors.registry import Plan

app = typer.Typer(
    help="Member Hub: one member profile and one points economy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)


def _settings() -> Settings:
    try:
        return load_settings()
    except HubError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None


def _fail(exc: HubError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc.message}")
    return typer.Exit(1)


def _database_url(settings: Settings) -> str:
    if settings.embedded:
        console.print(f"starting embedded PostgreSQL under {settings.data_dir / 'pg'}")
    return resolve_url(settings.database_url, settings.data_dir)


async def _check_migrated(url: str, settings: Settings) -> None:
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        await db.ping()
        await check_ready(db, settings)
    finally:
        await db.dispose()


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (creates the embedded database when needed)."""
    settings = _settings()
    url = _database_url(settings)
    upgrade(url)
    console.print(f"database at revision {head_revision()}")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _serve(
    settings: Settings, url: str, host: str, port: int, ide_tokens: dict[str, str] | None = None
) -> None:
    import uvicorn

    from hub.app import create_app
    from hub.core.telemetry import setup_logging, setup_telemetry
    from hub.http_server import OneWriteHttpToolsProtocol

    setup_logging(settings.log_level, settings.log_json)
    setup_telemetry(settings.otel_exporter.value)

    try:
        asyncio.run(_check_migrated(url, settings))
    except HubError as exc:
        raise _fail(exc) from None
    embedded = settings.embedded
    # The embedded URL was resolved already; pass it on so the app reuses the same server.
    settings = settings.model_copy(update={"database_url": url})
    application = create_app(settings, ide_tokens=ide_tokens)
    console.print(f"serving on http://{host}:{port}  (GraphQL at /graphql)")
    if embedded:
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again under the
        # handler it found: the default one ends the process without running `atexit`, which
        # is where pgserver stops the embedded PostgreSQL (it was left running). Exit instead.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # Measured here: uvloop gave 6-9x worse p99 at saturation than the asyncio loop.
    uvicorn.run(
        application,
        host=host,
        port=port,
        loop="asyncio",
        http=OneWriteHttpToolsProtocol,
        log_level="warning",
        access_log=False,
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default HUB_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default HUB_PORT).")] = None,
) -> None:
    """Serve the hub. Refuses an unmigrated database: run `hub migrate` first."""
    settings = _settings()
    url = _database_url(settings)
    _serve(settings, url, host or settings.host, port or settings.port)


async def _nightly_jobs(url: str) -> None:
    """What the scheduler runs every night, so the demo shows today's balances and tiers."""
    from datetime import datetime

    from hub.core.db import Database
    from hub.loyalty import jobs
    from hub.loyalty.program import configured_program

    program = configured_program()
    today = datetime.now(program.timezone).date()
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        for job in (jobs.release_pending, jobs.expire, jobs.evaluate_tiers):
            async with db.unit_of_work() as session:
                await job(session=session, program=program, as_of=today)
    finally:
        await db.dispose()


async def _demo_member(url: str) -> int | None:
    """The demo's story: a member the hotel, Tmall and the store all know, with points."""
    from sqlalchemy import text

    from hub.core.db import Database

    db = Database(url, pool_size=1, max_overflow=0)
    try:
        async with db.read() as session:
            found = await session.scalar(
                text(
                    "SELECT sr.member_id FROM source_record sr "
                    "GROUP BY sr.member_id "
                    "HAVING bool_or(sr.source = 'hotel') AND bool_or(sr.source = 'taobao') "
                    "AND bool_or(sr.source = 'pos') "
                    "ORDER BY (SELECT count(DISTINCT l.issuer_line) * 1000000 "
                    "  + coalesce(sum(l.remaining) FILTER (WHERE l.issuer_line = 'hotel'), 0) "
                    "  FROM loyalty_lot l WHERE l.member_id = sr.member_id "
                    "  AND l.state = 'available' AND l.has_points) DESC NULLS LAST, "
                    "sr.member_id LIMIT 1"
                )
            )
        return int(found) if found is not None else None
    finally:
        await db.dispose()


DEMO_PEOPLE = 2_000
DEMO_SEED = 20261122


@app.command()
def demo(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
) -> None:
    """Set up the embedded database, load demo data, print tokens, and serve with GraphiQL."""
    settings = _settings()
    url = _database_url(settings)
    upgrade(url)
    demo_data = settings.data_dir / "demo-data"
    if not (demo_data / "truth.csv").exists():
        from hub.generator import generate as run_generator

        console.print(f"generating demo data for {DEMO_PEOPLE:,} synthetic people in {demo_data}")
        run_generator(DEMO_PEOPLE, DEMO_SEED, demo_data)
    files = sorted(p for p in demo_data.iterdir() if p.name != "truth.csv")
    try:
        result = asyncio.run(_import(settings, url, "auto", files, actor="demo"))
    except HubError as exc:
        raise _fail(exc) from None
    asyncio.run(_nightly_jobs(url))
    console.print(
        f"demo data: {result['read']:,} rows read, {result['new']:,} new, "
        f"{result['unchanged']:,} unchanged, {result['rejected']:,} rejected"
    )
    secret = settings.jwt_signing_secret()
    star = asyncio.run(_demo_member(url))
    tokens = {
        "agent (hotel)": issue_token(
            secret=secret, role=Role.AGENT, subject="demo-agent", business_line="hotel"
        ),
        "partner (store)": issue_token(
            secret=secret, role=Role.PARTNER, subject="demo-pos", business_line="store"
        ),
        "admin": issue_token(secret=secret, role=Role.ADMIN, subject="demo-admin"),
    }
    if star is not None:
        tokens[f"member {star}"] = issue_token(
            secret=secret, role=Role.MEMBER, subject=f"demo-member-{star}", member_id=star
        )
    h, p = host or settings.host, port or settings.port
    base = f"http://{h}:{p}"
    console.print(f"\n[bold]Member Hub demo[/bold] at {base}")
    console.print(f"  GraphiQL      {base}/graphql   (header: Authorization: Bearer <token>)")
    console.print(
        f"  console       {base}/console   (customer service; sign in with the agent token)"
    )
    console.print(f"  health        {base}/readyz")
    for label, value in tokens.items():
        console.print(f"\n  [bold]{label}[/bold] token:\n  {value}")
    if star is not None:
        console.print(
            f"\n[bold]Member {star}[/bold] is known to the hotel by ID document, to Tmall and to"
            " the store — one profile, points from every line. Three things to try:\n"
            "  1. as that member:  { me { profile { name sourceRecords { source } } "
            "points { available byBusinessLine { line available } } } }\n"
            f'  2. as the agent:    {{ member(id: "{star}") {{ links {{ rule explain }} '
            "loyalty { tier { code } } } }\n"
            "  3. as that member, spend hotel points at the store:  mutation { redeemPoints(input: "
            '{line: "store", points: 100, orderRef: "DEMO-1", idempotencyKey: "demo-1"}) '
            "{ __typename ... on RedeemPointsSuccess { redemption { id lots { issuerLine points } } } } }\n"
        )
    ide_tokens = {
        "agent": tokens["agent (hotel)"],
        "partner": tokens["partner (store)"],
        "admin": tokens["admin"],
    }
    if star is not None:
        ide_tokens["member"] = tokens[f"member {star}"]
    _serve(settings, url, h, p, ide_tokens)


@app.command()
def token(
    role: Annotated[Role, typer.Option(help="member, partner, agent or admin.")],
    subject: Annotated[str, typer.Option(help="Principal id written into the token.")] = "dev",
    member_id: Annotated[int | None, typer.Option(help="Member id (member tokens).")] = None,
    business_line: Annotated[
        str | None, typer.Option(help="Business line (partner/agent).")
    ] = None,
    ttl_hours: Annotated[int, typer.Option(min=1, max=720, help="Lifetime in hours.")] = 12,
) -> None:
    """Print a dev/demo token (HS256). Production tokens come from your identity provider."""
    settings = _settings()
    try:
        value = issue_token(
            secret=settings.jwt_signing_secret(),
            role=role,
            subject=subject,
            member_id=member_id,
            business_line=business_line,
            ttl=timedelta(hours=ttl_hours),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except HubError as exc:
        raise _fail(exc) from None
    sys.stdout.write(value + "\n")


def _print_report(report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="import summary", show_edge=False)
    for col in ("file", "connector", "read", "new", "unchanged", "updated", "rejected"):
        table.add_column(col, justify="left" if col in ("file", "connector") else "right")
    files: dict[str, dict[str, Any]] = report["files"]
    connectors: dict[str, str] = report["connectors"]
    for name, c in files.items():
        table.add_row(
            name,
            str(connectors.get(name, "")),
            *(str(c[k]) for k in ("read", "new", "unchanged", "updated", "rejected")),
        )
    table.add_row(
        "[bold]total[/bold]",
        "",
        *(f"[bold]{report[k]}[/bold]" for k in ("read", "new", "unchanged", "updated", "rejected")),
    )
    console.print(table)
    by_reason = report["rejected_by_reason"]
    if report["warnings"]:
        console.print(f"warnings (row landed, a value was dropped): {report['warnings']}")
    if by_reason:
        reasons = ", ".join(f"{k}={v}" for k, v in by_reason.items())
        console.print(f"rejected by reason: {reasons}")
    for name, why in report["refused_files"].items():
        console.print(f"[yellow]refused[/yellow] {name}: {why}")


async def _import(
    settings: Settings,
    url: str,
    connector: str,
    paths: list[Path],
    *,
    mapping: Path | None = None,
    batch_size: int = 5_000,
    actor: str = "cli",
    bulk: bool = False,
) -> dict[str, Any]:
    """Run one import with a live progress line; returns the report as a dict. ``bulk``: the
    rows only, without resolution and accrual (``BULK_FOLLOW_UP`` runs them after)."""
    import time

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from hub.core.db import Database
    from hub.importer import ingest_hooks, run_import

    db = Database(url, pool_size=2, max_overflow=1)
    try:
        keyring = await check_ready(db, settings)
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("rows={task.completed:,.0f}"),
            TextColumn("rows/s={task.fields[rate]:,.0f}"),
            TextColumn("errors={task.fields[errors]:,}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as bar:
            task = bar.add_task(f"importing ({connector})", total=None, rate=0.0, errors=0)
            started = time.perf_counter()

            def progress(rows: int, errors: int) -> None:
                elapsed = max(time.perf_counter() - started, 1e-6)
                bar.update(task, completed=rows, rate=rows / elapsed, errors=errors)

            def on_plan(plans: list[Plan]) -> None:
                if connector == "auto":
                    for p in plans:
                        extra = f" (+ {p.items.name})" if p.items else ""
                        console.print(f"{p.path.name}: {p.connector}{extra}")

            result = await run_import(
                db=db,
                keyring=keyring,
                connector=connector,
                paths=paths,
                actor=actor,
                mapping_path=mapping,
                hooks=None if bulk else ingest_hooks(keyring),
                batch_size=batch_size,
                progress=progress,
                on_plan=on_plan,
                parallel=True,
            )
        report = result.as_dict()
        if bulk:
            report["deferred"] = list(BULK_FOLLOW_UP)
        return report
    finally:
        await db.dispose()


# What a bulk import leaves to be run after it, in this order.
BULK_FOLLOW_UP = ("hub identity resolve", "hub ledger accrue")


@app.command("import")
def import_(
    connector: Annotated[
        str,
        typer.Argument(
            help="auto, or one of: pos, member_app, taobao, taobao_members, douyin, douyin_members, hotel, generic_csv."
        ),
    ],
    paths: Annotated[list[Path], typer.Argument(help="Files or folders.")],
    mapping: Annotated[Path | None, typer.Option(help="TOML mapping for generic_csv.")] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the JSON report here.")
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, max=50_000, help="Rows per transaction.")
    ] = 5_000,
    actor: Annotated[str, typer.Option(help="Who runs the import (audit).")] = "cli",
    bulk: Annotated[
        bool,
        typer.Option(
            "--bulk",
            help="Land the rows only (a first load of large exports): identity resolution "
            "and accrual wait for `hub identity resolve`, then `hub ledger accrue`.",
        ),
    ] = False,
) -> None:
    """Import files through a connector, with progress and a summary.

    Rejected rows are listed in the summary and the report (--report).
    Exit code 1: the import stopped, or a file named on the command line was refused.
    Files in a folder that no connector recognises are only reported.

    Each landed batch is resolved into members and accrued as it lands; with --bulk it is not:
    the rows land about ten times sooner, and `hub identity resolve`, then `hub ledger accrue`
    do the rest after it, in about the time the plain import would have taken in all (the
    report's "deferred" names them)."""
    import json

    settings = _settings()
    url = _database_url(settings)

    try:
        result = asyncio.run(
            _import(
                settings,
                url,
                connector,
                paths,
                mapping=mapping,
                batch_size=batch_size,
                actor=actor,
                bulk=bulk,
            )
        )
    except HubError as exc:
        raise _fail(exc) from None
    if report is not None:
        report.write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str))
        console.print(f"report written to {report}")
    _print_report(result)
    if bulk:
        console.print(
            "bulk import: the records are not yet resolved into members and the activities "
            f"not yet accrued; run {', then '.join(f'`{c}`' for c in BULK_FOLLOW_UP)}"
        )
    if result["failed"]:
        console.print(f"[red]import stopped:[/red] {result['failed']}")
        raise typer.Exit(1)
    named = {p.name for p in paths if p.is_file()}
    if refused := sorted(named & set(result["refused_files"])):
        console.print(f"[red]not imported:[/red] {', '.join(refused)} (named, but refused)")
        raise typer.Exit(1)


@app.command()
def generate(
    people: Annotated[int, typer.Option(min=1, max=1_000_000, help="How many synthetic people.")],
    out: Annotated[Path, typer.Option(help="Folder to write the files into.")],
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 1,
) -> None:
    """Write a synthetic group's data in every real source layout, plus truth.csv."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from hub.generator import generate as run_generator

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("people", total=people)
        summary = run_generator(people, seed, out, lambda done: bar.update(task, completed=done))
    for name, rows in summary.files.items():
        console.print(f"{rows:>12,}  {name}")
    console.print(f"{summary.total_rows:>12,}  rows for {summary.people:,} people in {out}")


from hub.identity_cli import identity_app  # noqa: E402 - sub-commands mount after the app
from hub.loyalty_cli import loyalty_app  # noqa: E402
from hub.redemption_cli import redemption_app  # noqa: E402

app.add_typer(identity_app, name="identity")
app.add_typer(loyalty_app)
app.add_typer(redemption_app)

schema_app = typer.Typer(help="The GraphQL schema.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")


@schema_app.command("export")
def schema_export() -> None:
    """Write schema/schema.graphql from the code."""
    from schema import SDL_PATH, export_sdl

    SDL_PATH.write_text(export_sdl())
    console.print(f"wrote {SDL_PATH}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
