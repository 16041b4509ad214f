"""Which keys the data was written under: one check value per key id.

Identifiers are stored as keyed hashes and PII encrypted under the keyring's keys. A command run
with a keyring other than the one the data was written with hashes the same phone to another
digest (people silently stop matching) and cannot decrypt what is stored. ``keyring_check`` holds,
per key, a check value that says whether two keys are equal and nothing else about them
(``hub.core.keycheck``); the hub records its keys on first use and refuses a keyring whose key
of the same id differs.

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE keyring_check (
            kind text NOT NULL CHECK (kind IN ('hash', 'encryption')),
            key_id text NOT NULL,
            check_value bytea NOT NULL CHECK (length(check_value) = 16),
            recorded_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (kind, key_id)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE keyring_check")
