"""``hub identity …``: quality evaluation, batch re-resolution, the review queue.

Mounted by the composition root (``app.add_typer(identity_app, name="identity")``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import text

from hub.core.db import Database, resolve_url
from hub.core.errors import HubError
from hub.core.settings import Settings, load_settings

identity_app = typer.Typer(
    help="Identity resolution: evaluate, re-resolve, review.", no_args_is_help=True
)
review_app = typer.Typer(help="The customer-service review queue.", no_args_is_help=True)
identity_app.add_typer(review_app, name="review")
console = Console(stderr=True, soft_wrap=True)

MAX_LIST = 1_000


def _settings() -> Settings:
    try:
        return load_settings()
    except HubError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None


def _database(settings: Settings) -> Database:
    return Database(resolve_url(settings.database_url, settings.data_dir), pool_size=2)


@identity_app.command()
def evaluate(
    records: Annotated[Path, typer.Option("--records", exists=True, dir_okay=False)],
    truth: Annotated[Path, typer.Option("--truth", exists=True, dir_okay=False)],
    mapping: Annotated[Path | None, typer.Option("--mapping", exists=True, dir_okay=False)] = None,
    config: Annotated[Path | None, typer.Option("--config", exists=True, dir_okay=False)] = None,
) -> None:
    """Resolve a labelled set and print pairwise precision, recall and F1."""
    from identity.evaluate import run_evaluation

    try:
        result = run_evaluation(records, truth, mapping, config)
    except HubError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    Console(soft_wrap=True).print(result.format(), highlight=False)


async def _resolve(settings: Settings, config: Path | None) -> Any:
    from hub.core.keycheck import check_ready
    from hub.flows.resolution import resolve_all
    from identity.config import load_config

    db = _database(settings)
    phases = {"load": "loading records", "keys": "lookup keys", "resolve": "resolving"}
    phases["settle"] = "writing the partition"
    try:
        keyring = await check_ready(db, settings)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,} records"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("starting", total=None)

            def tell(phase: str, n: int) -> None:
                progress.update(task, description=phases.get(phase, phase), completed=n)

            return await resolve_all(
                db=db,
                keyring=keyring,
                config=load_config(config),
                actor="cli",
                progress=tell,
            )
    finally:
        await db.dispose()


@identity_app.command()
def resolve(
    config: Annotated[Path | None, typer.Option("--config", exists=True, dir_okay=False)] = None,
) -> None:
    """Re-resolve every source record in the database (batch); agents' decisions are kept."""
    settings = _settings()
    try:
        s = asyncio.run(_resolve(settings, config))
    except HubError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    Console(soft_wrap=True).print(
        f"records={s.records} attached={s.attached} merged={s.merged} moved={s.moved} "
        f"members_created={s.members_created} members_retired={s.members_retired} "
        f"review_items={s.review_items} undecryptable={s.undecryptable}",
        highlight=False,
    )


async def _review_rows(settings: Settings, first: int) -> list[Any]:
    db = _database(settings)
    try:
        async with db.read() as session:
            rows = await session.execute(
                text(
                    "SELECT r.id, r.reason, r.rule, r.score, r.record_a, a.member_id, r.record_b, "
                    "b.member_id, r.created_at FROM review_item r "
                    "JOIN source_record a ON a.id = r.record_a "
                    "JOIN source_record b ON b.id = r.record_b "
                    "WHERE r.status = 'open' ORDER BY r.id LIMIT :n"
                ),
                {"n": first},
            )
            return list(rows)
    finally:
        await db.dispose()


@review_app.command("list")
def review_list(
    first: Annotated[int, typer.Option("--first", min=1, max=MAX_LIST)] = 50,
) -> None:
    """Open review items, oldest first (ids and reasons only, never PII)."""
    settings = _settings()
    rows = asyncio.run(_review_rows(settings, first))
    table = Table("item", "reason", "rule", "score", "record a", "member a", "record b", "member b")
    for r in rows:
        table.add_row(*(str(v) for v in r[:3]), f"{r[3]:.2f}", *(str(v) for v in r[4:8]))
    out = Console()  # made here so the terminal's width (COLUMNS) is read at run time
    out.print(table)
    out.print(f"{len(rows)} open item(s)", highlight=False)
