"""Ingest's source_identifier rows without a per-row foreign-key check.

``bench/import_vs_copy.py`` (EXPLAIN ANALYZE of a 10,000-row batch at 300,000 rows): the
foreign key ``source_identifier.source_record_id`` ran its trigger per inserted identifier (a
lookup and a ``FOR KEY SHARE`` lock of the record), ~58 ms of a record upsert's ~640 ms, for
two identifiers per new buyer. As with 0009's provenance tables, the reference holds by
construction: identifiers are written only by ``hub.flows.ingest.store``, in the statement that
inserted their record or (for an updated record) in the next statement of the same transaction,
from the ids it returned; records are never deleted (erasure clears them in place and deletes
their identifiers itself, ``hub.flows.erasure``).

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE source_identifier DROP CONSTRAINT source_identifier_source_record_id_fkey"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE source_identifier ADD CONSTRAINT source_identifier_source_record_id_fkey "
        "FOREIGN KEY (source_record_id) REFERENCES source_record (id) ON DELETE CASCADE"
    )
