"""Identity store: the engine's lookup keys, engine clusters, agent pins, review detail.

- ``source_block`` holds, per source record, keyed hashes of what incremental resolution needs to
  find candidates without scanning: blocking keys (``b:``) and identifier hashes counted for
  fan-out (``h:``) — counting rows per key tells whether a block is over its size limit or a key
  over its fan-out limit, exactly as a batch run would see — plus the agents' search keys: any
  identifier value (``s:``) and the normalised name (``n:``).
- ``source_record.engine_root`` is the engine's cluster (its first record), which can differ from
  the member when an agent decided otherwise; ``member_pinned`` marks records whose member an
  agent decided, so automatic resolution never moves them.
- ``identity_event.batch`` groups the events of one operation (``identity_operation_seq``).
- ``review_item`` remembers the rule and detail of a refused merge (never a value).

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

STATEMENTS = [
    """
    CREATE TABLE source_block (
      key_hash         text NOT NULL,
      source_record_id bigint NOT NULL REFERENCES source_record (id) ON DELETE CASCADE,
      PRIMARY KEY (key_hash, source_record_id)
    )
    """,
    "CREATE INDEX source_block_record ON source_block (source_record_id)",
    "ALTER TABLE source_record ADD COLUMN engine_root bigint",
    "ALTER TABLE source_record ADD COLUMN member_pinned boolean NOT NULL DEFAULT false",
    "CREATE INDEX source_record_engine_root ON source_record (engine_root)",
    "ALTER TABLE review_item ADD COLUMN rule text NOT NULL DEFAULT 'score'",
    "ALTER TABLE review_item ADD COLUMN detail text NOT NULL DEFAULT ''",
    "CREATE INDEX review_item_b ON review_item (record_b)",
    "CREATE SEQUENCE identity_operation_seq",
    "CREATE INDEX identity_event_batch ON identity_event (batch)",
    # Agents look people up by an order / folio number without knowing its source.
    "CREATE INDEX activity_external_id ON activity (external_id)",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP INDEX activity_external_id")
    op.execute("DROP INDEX identity_event_batch")
    op.execute("DROP SEQUENCE identity_operation_seq")
    op.execute("DROP INDEX review_item_b")
    op.execute("ALTER TABLE review_item DROP COLUMN detail")
    op.execute("ALTER TABLE review_item DROP COLUMN rule")
    op.execute("DROP INDEX source_record_engine_root")
    op.execute("ALTER TABLE source_record DROP COLUMN member_pinned")
    op.execute("ALTER TABLE source_record DROP COLUMN engine_root")
    op.execute("DROP TABLE source_block")
