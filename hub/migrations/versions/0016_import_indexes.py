"""Fewer index entries written per imported activity and record.

Each imported activity wrote four index entries (primary key, ``(source, external_id)``,
``activity_person``, ``activity_external_id``) and each new source record four (primary key,
``(source, source_key)``, ``source_record_member``, ``source_record_engine_root``). In
``bench/import_vs_copy.py`` index maintenance is most of the server's time per row.

- ``activity_external_id`` (an agent's search by order / folio number without its source) is
  covered by the unique key once its columns are ``(external_id, source)``: the lookup uses its
  leading column, and ``ON CONFLICT (source, external_id)`` infers a unique index by its set of
  columns, not their order. So the key is rebuilt in that order and the extra index dropped.
- ``source_record.member_id`` and ``engine_root`` are NULL until identity resolution places the
  record, and nothing looks records up by a NULL member or root (every read is ``= …`` or
  ``= ANY(…)``, which a partial index ``WHERE … IS NOT NULL`` serves). Partial, they take no
  entry for a record the import inserts, and identity's update adds the one it needs.

Revision ID: 0016
Revises: 0015
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


# (table, parent column): the append-only facts keyed by (parent, content_hash)
FACTS = (("activity_event", "activity_id"), ("source_observation", "source_record_id"))


def upgrade() -> None:
    for table, parent in FACTS:
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey, "
            f"DROP CONSTRAINT {table}_{parent}_content_hash_key, "
            f"ADD PRIMARY KEY ({parent}, content_hash)"
        )
    op.execute("CREATE UNIQUE INDEX activity_external_id_source ON activity (external_id, source)")
    op.execute("ALTER TABLE activity DROP CONSTRAINT activity_source_external_id_key")
    op.execute(
        "ALTER TABLE activity ADD CONSTRAINT activity_source_external_id_key "
        "UNIQUE USING INDEX activity_external_id_source"
    )
    op.execute("DROP INDEX activity_external_id")
    for index, column in (
        ("source_record_member", "member_id"),
        ("source_record_engine_root", "engine_root"),
    ):
        op.execute(f"DROP INDEX {index}")
        op.execute(f"CREATE INDEX {index} ON source_record ({column}) WHERE {column} IS NOT NULL")


def downgrade() -> None:
    for index, column in (
        ("source_record_member", "member_id"),
        ("source_record_engine_root", "engine_root"),
    ):
        op.execute(f"DROP INDEX {index}")
        op.execute(f"CREATE INDEX {index} ON source_record ({column})")
    op.execute("CREATE INDEX activity_external_id ON activity (external_id)")
    op.execute("ALTER TABLE activity DROP CONSTRAINT activity_source_external_id_key")
    op.execute(
        "ALTER TABLE activity ADD CONSTRAINT activity_source_external_id_key "
        "UNIQUE (source, external_id)"
    )
    for table, parent in FACTS:
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey, ADD PRIMARY KEY (id), "
            f"ADD CONSTRAINT {table}_{parent}_content_hash_key UNIQUE ({parent}, content_hash)"
        )
