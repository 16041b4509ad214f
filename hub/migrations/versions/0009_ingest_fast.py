"""Ingest's append-only provenance tables without per-row foreign-key checks.

``source_observation`` and ``activity_event`` get one row per new or changed record/activity of
every import. Their foreign keys were checked row by row (PostgreSQL runs a trigger per inserted
row and constraint: a lookup and a ``FOR KEY SHARE`` lock of the parent): in
``bench/import_vs_copy.py`` that was about a third of the activity upsert's time. Their rows are
written only by ``hub.flows.ingest.store``, in the statement that returned the parent's id from
its own insert or update, under an ``import_run`` created before the first batch; no parent is
ever deleted (records are erased in place, activities and runs are kept). So the references hold
by construction, and the checks are dropped.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# (table, constraint, column, parent, on delete)
FOREIGN_KEYS = (
    (
        "source_observation",
        "source_observation_source_record_id_fkey",
        "source_record_id",
        "source_record",
        "CASCADE",
    ),
    (
        "source_observation",
        "source_observation_import_run_id_fkey",
        "import_run_id",
        "import_run",
        "NO ACTION",
    ),
    ("activity_event", "activity_event_activity_id_fkey", "activity_id", "activity", "CASCADE"),
    (
        "activity_event",
        "activity_event_import_run_id_fkey",
        "import_run_id",
        "import_run",
        "NO ACTION",
    ),
)


def upgrade() -> None:
    for table, name, *_ in FOREIGN_KEYS:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")


def downgrade() -> None:
    for table, name, column, parent, on_delete in FOREIGN_KEYS:
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({column}) "
            f"REFERENCES {parent} (id) ON DELETE {on_delete}"
        )
