"""The hold plans its look-ups as index scans at any table size, as capture and cancel do (0015).

``redemption_place_hold`` looks its idempotency key up (``redemption_find_key``), a partner's
one-time code (``redemption_code`` by ``code_hash``) and the member's accounts and lots. PL/pgSQL
caches each statement's plan per connection, and a plan made while a table held a handful of
rows is a sequential scan — for ``idempotency_key`` and ``redemption_code`` that is every new
database and the first minutes after a deploy. The plan then stays a sequential scan as the
table grows (the keys are kept 30 days) until statistics change or the connection is recycled.

Found with ``bench/redemption.py``'s database: holds run several to a statement (one
connection, eight calls of ``redemption_place_hold`` each) planned the key look-up on a
near-empty ``idempotency_key``; from then on every hold, and every capture (the look-up's plan
is ``redemption_find_key``'s, whoever calls it first), read the whole table: 9,458 sequential
scans reading 94 million rows in a 24-second run, and a redemption cost 1.5–4 ms of server CPU
where it costs 0.3 with the index. The one-call-per-statement bench hid it only by timing:
its connections planned the look-up after the table had grown past a page.

With ``enable_seqscan = off`` on the hold, as on capture, cancel and expiry, every statement it
runs (and every function it calls) takes the index whatever the table's size.

Revision ID: 0024
Revises: 0023
"""

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

_HOLD = (
    "redemption_place_hold(text, text, text, jsonb, jsonb, bigint, text, text, text, text, "
    "bigint, text, numeric, text, timestamptz, timestamptz, jsonb)"
)


def upgrade() -> None:
    op.execute(f"ALTER FUNCTION {_HOLD} SET enable_seqscan = off")


def downgrade() -> None:
    op.execute(f"ALTER FUNCTION {_HOLD} RESET enable_seqscan")
