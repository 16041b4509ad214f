"""Ingest history written when a row changes, not when it first lands.

``activity_event`` and ``source_observation`` got a row for every activity and record an import
inserted, holding the very state the new row held: a million imported orders wrote a million
event rows and index entries (and a third as many observations) repeating the tables beside
them. Measured with ``bench/import_vs_copy.py``'s pipeline at 1,000,000 rows, alternating: the
server's CPU per row 20.3–21.7 µs without them against 23.3–24.8 µs with them.

From here the history tables hold the states a row has *left*. When an activity's or a record's
content changes, a trigger adds the state it held until then (status and amount, or the time it
was observed; its content digest; the import run that wrote it; for an activity the time it was
written) to the history, and the row holds the new one. A row's whole history is its history rows
and the row itself; a row that never changed has no history rows; nothing that landed is lost.
The trigger sees the row version the update replaces, so a state written by a concurrent import
and changed by this one is recorded too (a statement's own snapshot would not show it).

So that the state a row leaves can say which import wrote it, ``activity`` and ``source_record``
get ``import_run_id`` (no foreign key, like the history tables' column since 0009). Rows written
before this migration have it NULL; their state is on the history row the earlier code wrote for
it, and the trigger then adds nothing (same digest).

An erasure's update of a record (``erased_at`` set) records nothing: the erasure deletes the
record's observations, and its old digest must not come back.

Downgrade puts each current state into the history again, as the earlier code expects.

Revision ID: 0021
Revises: 0020
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Catalog-only: a nullable column without a default rewrites nothing.
    op.execute("ALTER TABLE activity ADD COLUMN import_run_id bigint")
    op.execute("ALTER TABLE source_record ADD COLUMN import_run_id bigint")
    op.execute(
        """
        CREATE FUNCTION hub_activity_superseded() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          INSERT INTO activity_event
            (activity_id, status, amount_fen, content_hash, recorded_at, import_run_id)
          VALUES (OLD.id, OLD.status, OLD.amount_fen, OLD.content_hash, OLD.updated_at,
                  OLD.import_run_id)
          ON CONFLICT (activity_id, content_hash) DO NOTHING;
          RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER activity_history AFTER UPDATE OF content_hash ON activity
          FOR EACH ROW WHEN (OLD.content_hash IS DISTINCT FROM NEW.content_hash)
          EXECUTE FUNCTION hub_activity_superseded()
        """
    )
    op.execute(
        """
        CREATE FUNCTION hub_record_superseded() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          INSERT INTO source_observation
            (source_record_id, observed_at, content_hash, import_run_id)
          VALUES (OLD.id, OLD.observed_at, OLD.content_hash, OLD.import_run_id)
          ON CONFLICT (source_record_id, content_hash) DO NOTHING;
          RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER source_record_history AFTER UPDATE OF content_hash ON source_record
          FOR EACH ROW
          WHEN (OLD.content_hash IS DISTINCT FROM NEW.content_hash AND NEW.erased_at IS NULL)
          EXECUTE FUNCTION hub_record_superseded()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER source_record_history ON source_record")
    op.execute("DROP FUNCTION hub_record_superseded()")
    op.execute("DROP TRIGGER activity_history ON activity")
    op.execute("DROP FUNCTION hub_activity_superseded()")
    op.execute(
        """
        INSERT INTO activity_event
          (activity_id, status, amount_fen, content_hash, recorded_at, import_run_id)
        SELECT id, status, amount_fen, content_hash, updated_at, import_run_id FROM activity
        ON CONFLICT (activity_id, content_hash) DO NOTHING
        """
    )
    op.execute(
        """
        INSERT INTO source_observation (source_record_id, observed_at, content_hash, import_run_id)
        SELECT id, observed_at, content_hash, import_run_id FROM source_record
        WHERE erased_at IS NULL
        ON CONFLICT (source_record_id, content_hash) DO NOTHING
        """
    )
    op.execute("ALTER TABLE source_record DROP COLUMN import_run_id")
    op.execute("ALTER TABLE activity DROP COLUMN import_run_id")
