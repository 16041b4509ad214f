"""Redemption's resolving functions plan their key look-ups as index scans at any table size.

PL/pgSQL caches each statement's plan for the life of the connection, and the plan cache
settles on a generic plan after a few calls (``redemption_capture_all`` forces one, 0010). A
plan made while ``redemption_hold`` or ``redemption_hold_lot`` held a handful of rows — a new
database, the first minutes after a deploy, ``bench/redemption.py`` — is a sequential scan,
cheaper than the index on one page, and it stays one as the table grows, until statistics
change (an autovacuum ANALYZE) or the connection is recycled (30 minutes). Measured with
``bench/redemption.py`` on main: one sequential scan per capture of each table (the capture's
``UPDATE redemption_hold … WHERE id = …`` and ``UPDATE redemption_hold_lot … WHERE hold_id =
…``), reading ~400–800 rows each on average in an 8-second window, growing with the table; a
full run's redemptions cost more than a short run's for this reason.

Every statement of capture, cancel and expiry is a look-up by key (the hold's id, its lots,
its member's accounts, line accounts, settlement periods), so these functions now run with
``enable_seqscan = off``: the planner then takes the index whatever the table's size (it only
penalises sequential scans, so a statement without a usable index would still run).
Functions they call inherit the setting.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_FUNCTIONS = (
    "redemption_capture(text, text, text, jsonb, bigint, bigint, bigint, text, timestamptz, "
    "text, date, text[], numeric[], text)",
    "redemption_cancel(text, text, text, jsonb, bigint, bigint, text, timestamptz, text)",
    "redemption_expire(bigint, timestamptz)",
)


def upgrade() -> None:
    for function in _FUNCTIONS:
        op.execute(f"ALTER FUNCTION {function} SET enable_seqscan = off")


def downgrade() -> None:
    for function in _FUNCTIONS:
        op.execute(f"ALTER FUNCTION {function} RESET enable_seqscan")
