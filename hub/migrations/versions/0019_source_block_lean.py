"""Identity's lookup keys are written without a foreign-key check per row.

``source_block`` holds ~8 keyed hashes per source record, written for every record an import
lands (with identity resolution plugged in). Its foreign key to ``source_record`` ran a
referential-integrity trigger per key row — a lookup and a ``FOR KEY SHARE`` lock of the
record: inserting an import's 215,000 keys took 3.1 s with it (and ``ON CONFLICT``) against
1.0 s without either. Its rows are written only for records the same statement's caller has
just read (``identity.store.replace_keys``, under the identity lock), and no source record is
ever deleted (erasure keeps the row and removes its PII and keys), so ``ON DELETE CASCADE``
never fired. This follows 0009 and 0011 (``source_observation``, ``activity_event``,
``source_identifier``).

Revision ID: 0019
Revises: 0018
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE source_block DROP CONSTRAINT source_block_source_record_id_fkey")


def downgrade() -> None:
    op.execute(
        "ALTER TABLE source_block ADD CONSTRAINT source_block_source_record_id_fkey "
        "FOREIGN KEY (source_record_id) REFERENCES source_record (id) ON DELETE CASCADE"
    )
