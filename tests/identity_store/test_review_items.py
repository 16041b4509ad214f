"""The review queue is written as a difference: what did not change keeps its row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from hub.core.db import Database
from identity import store
from tests.identity_store.conftest import Land, person, scalar


async def _records(db: Database, land: Land) -> list[int]:
    # Three records with nothing in common: resolution proposes no item of its own.
    await land([person("app", f"u{i}", ("email", f"r{i}@example.test")) for i in range(3)])
    async with db.read() as session:
        rows = await session.execute(text("SELECT id FROM source_record ORDER BY id"))
        return [r[0] for r in rows]


def _item(a: int, b: int, score: float = 3.5, **explain: Any) -> store.ReviewRow:
    return store.ReviewRow(a, b, score, "shared_key", "score", "", {"fields": [], **explain})


async def _replace(db: Database, scope: list[int], items: list[store.ReviewRow]) -> None:
    async with db.unit_of_work() as session:
        await store.replace_reviews(session=session, scope=scope, items=items)


async def _rows(db: Database) -> dict[tuple[int, int], tuple[Any, ...]]:
    """(record_a, record_b) -> (id, row version, score, explain, status) of every item."""
    async with db.read() as session:
        rows = await session.execute(
            text(
                "SELECT record_a, record_b, id, xmin::text, score, explain, status FROM review_item"
            )
        )
        return {(r[0], r[1]): tuple(r[2:]) for r in rows}


async def test_unchanged_items_are_not_written_again(db: Database, land: Land) -> None:
    a, b, c = await _records(db, land)
    await _replace(db, [a, b, c], [_item(a, b), _item(b, c)])
    first = await _rows(db)
    assert set(first) == {(a, b), (b, c)}
    await _replace(db, [a, b, c], [_item(a, b), _item(b, c)])
    # Same id and the same row version: the row was not touched at all.
    assert await _rows(db) == first


async def test_changed_items_update_in_place_and_dropped_ones_go(db: Database, land: Land) -> None:
    a, b, c = await _records(db, land)
    await _replace(db, [a, b, c], [_item(a, b), _item(b, c)])
    first = await _rows(db)
    await _replace(db, [a, b, c], [_item(a, b, score=4.25, note="rescored")])
    after = await _rows(db)
    assert set(after) == {(a, b)}
    item_id, version, score, explain, status = after[(a, b)]
    assert item_id == first[(a, b)][0]  # the agent's item keeps its id
    assert version != first[(a, b)][1]
    assert (score, status) == (4.25, "open")
    assert explain == {"fields": [], "note": "rescored"}


async def test_explain_alone_changing_is_written(db: Database, land: Land) -> None:
    a, b, _ = await _records(db, land)
    await _replace(db, [a, b], [_item(a, b, why="one")])
    await _replace(db, [a, b], [_item(a, b, why="two")])
    assert (await _rows(db))[(a, b)][3] == {"fields": [], "why": "two"}


async def test_items_outside_the_scope_and_decided_items_stay(db: Database, land: Land) -> None:
    a, b, c = await _records(db, land)
    await _replace(db, [a, b, c], [_item(a, b), _item(b, c), _item(a, c)])
    async with db.unit_of_work() as session:
        await session.execute(
            text(
                "UPDATE review_item SET status = 'rejected', resolved_at = now() WHERE record_a = :a AND record_b = :c"
            ),
            {"a": a, "c": c},
        )
    before = await _rows(db)
    # Scope {a, b}: only (a, b) is in it; (b, c) has an end outside, (a, c) is decided.
    await _replace(db, [a, b], [])
    after = await _rows(db)
    assert set(after) == {(b, c), (a, c)}
    assert after[(b, c)] == before[(b, c)]
    assert after[(a, c)] == before[(a, c)]
    # Proposed again, a decided pair is left as decided.
    await _replace(db, [a, c], [_item(a, c, score=9.0)])
    assert (await _rows(db))[(a, c)] == before[(a, c)]
    assert await scalar(db, "SELECT count(*) FROM review_item WHERE status = 'open'") == 1
