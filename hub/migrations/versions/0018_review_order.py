"""The review queue pages over open items in either of its orders by index.

``reviewQueue`` lists open items oldest first (by id) or, with ``orderBy: MOST_LIKELY``, highest
score first (ties by id). Both are keyset pages: ``id > :after`` and ``((-score), id) > (…)``.
Partial indexes over the open items serve both without reading the resolved ones, which
accumulate as customer service works through the queue (at 100,000 generated people the queue
starts at ~57,000 items).

Revision ID: 0018
Revises: 0017
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX review_item_open_id ON review_item (id) WHERE status = 'open'")
    op.execute(
        "CREATE INDEX review_item_open_likely ON review_item ((-score), id) WHERE status = 'open'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX review_item_open_likely")
    op.execute("DROP INDEX review_item_open_id")
