"""Foundation: the append-only audit log and the idempotency store.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One function serves every append-only table: ledger rows and audit rows are facts.
    op.execute(
        """
        CREATE FUNCTION hub_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION 'table % is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
        END $$;
        """
    )
    op.execute(
        """
        CREATE TABLE audit_log (
          id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
          at          timestamptz NOT NULL DEFAULT now(),
          actor       text NOT NULL,
          role        text NOT NULL,
          action      text NOT NULL,
          subject     text,
          reason      text,
          request_id  text,
          details     jsonb NOT NULL DEFAULT '{}'::jsonb
        )
        """
    )
    op.execute("CREATE INDEX audit_log_subject_at ON audit_log (subject, at DESC)")
    op.execute("CREATE INDEX audit_log_actor_at ON audit_log (actor, at DESC)")
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION hub_reject_change()"
    )
    op.execute(
        """
        CREATE TABLE idempotency_key (
          scope        text NOT NULL,
          key          text NOT NULL,
          operation    text NOT NULL,
          request_hash text NOT NULL,
          request      jsonb NOT NULL DEFAULT '{}'::jsonb,
          response     jsonb,
          created_at   timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (scope, key)
        )
        """
    )
    op.execute("CREATE INDEX idempotency_key_created ON idempotency_key (created_at)")


def downgrade() -> None:
    op.execute("DROP TABLE idempotency_key")
    op.execute("DROP TABLE audit_log")
    op.execute("DROP FUNCTION hub_reject_change()")
