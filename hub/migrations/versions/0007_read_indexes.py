"""Read indexes for the profile views (`me`, `member(id)`): one member's points and growth
answered from the index alone, whatever the member's history.

- ``loyalty_lot_member_live``: a member's spendable lots by expiry, carrying line and remaining.
  The points view sums them by line and lists those expiring soon; before, the expiring list
  range-scanned every member's lots expiring in the next 90 days (``loyalty_lot_expiring``)
  and filtered by member, which grows with the whole membership, and the by-line sums read
  one heap page per lot.
- ``loyalty_growth_member_amount`` replaces ``loyalty_growth_member`` (same key) and carries
  the amount, so the tier view's growth-this-period sum is an index-only scan.

Built ``CONCURRENTLY`` (outside the migration transaction): imports keep writing lots and
growth while a large database builds them.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(
            """
            CREATE INDEX CONCURRENTLY IF NOT EXISTS loyalty_lot_member_live
              ON loyalty_lot (member_id, expires_at) INCLUDE (issuer_line, remaining)
              WHERE state = 'available' AND remaining > 0
            """
        )
        op.execute(
            """
            CREATE INDEX CONCURRENTLY IF NOT EXISTS loyalty_growth_member_amount
              ON loyalty_growth (member_id, earned_at) INCLUDE (amount)
            """
        )
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS loyalty_growth_member")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS loyalty_growth_member "
            "ON loyalty_growth (member_id, earned_at)"
        )
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS loyalty_growth_member_amount")
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS loyalty_lot_member_live")
