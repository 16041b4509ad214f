"""Ingestion: source records with their identifiers and observations, activities and events,
import runs.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATEMENTS = [
    """
    CREATE TABLE import_run (
      id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      started_at   timestamptz NOT NULL DEFAULT now(),
      finished_at  timestamptz,
      actor        text NOT NULL,
      connector    text NOT NULL,
      status       text NOT NULL DEFAULT 'running'
                   CHECK (status IN ('running', 'finished', 'failed')),
      report       jsonb NOT NULL DEFAULT '{}'::jsonb
    )
    """,
    # One row per (source, source_key): what that source knows about that person now. PII lives
    # only in pii_enc (AES-GCM, bound to source/source_key); matching uses source_identifier.
    """
    CREATE TABLE source_record (
      id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      source           text NOT NULL,
      source_key       text NOT NULL,
      business_line    text NOT NULL,
      first_seen_at    timestamptz NOT NULL DEFAULT now(),
      observed_at      timestamptz NOT NULL,
      content_hash     text NOT NULL,
      pii_enc          text,
      gender           text,
      consents         jsonb NOT NULL DEFAULT '{}'::jsonb,
      attributes       jsonb NOT NULL DEFAULT '{}'::jsonb,
      erased_at        timestamptz,
      UNIQUE (source, source_key)
    )
    """,
    """
    CREATE TABLE source_identifier (
      source_record_id bigint NOT NULL REFERENCES source_record (id) ON DELETE CASCADE,
      kind             text NOT NULL,
      scope            text NOT NULL DEFAULT '',
      hash             text NOT NULL,
      verified         boolean NOT NULL DEFAULT false,
      verified_at      timestamptz,
      masked           text,
      PRIMARY KEY (source_record_id, kind, scope, hash)
    )
    """,
    "CREATE INDEX source_identifier_hash ON source_identifier (hash)",
    """
    CREATE TABLE source_observation (
      id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      source_record_id bigint NOT NULL REFERENCES source_record (id) ON DELETE CASCADE,
      observed_at      timestamptz NOT NULL,
      content_hash     text NOT NULL,
      import_run_id    bigint REFERENCES import_run (id),
      UNIQUE (source_record_id, content_hash)
    )
    """,
    """
    CREATE TABLE activity (
      id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      source               text NOT NULL,
      external_id          text NOT NULL,
      kind                 text NOT NULL,
      business_line        text NOT NULL,
      source_key           text,
      amount_fen           bigint NOT NULL CHECK (amount_fen >= 0),
      quantity             integer NOT NULL CHECK (quantity >= 0),
      occurred_at          timestamptz NOT NULL,
      status               text NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled')),
      original_external_id text,
      details              jsonb NOT NULL DEFAULT '{}'::jsonb,
      content_hash         text NOT NULL,
      first_seen_at        timestamptz NOT NULL DEFAULT now(),
      updated_at           timestamptz NOT NULL DEFAULT now(),
      UNIQUE (source, external_id)
    )
    """,
    "CREATE INDEX activity_person ON activity (source, source_key)",
    "CREATE INDEX activity_original ON activity (source, original_external_id) WHERE original_external_id IS NOT NULL",
    # Every distinct state an activity was seen in (paid -> completed -> refunded): facts.
    """
    CREATE TABLE activity_event (
      id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      activity_id    bigint NOT NULL REFERENCES activity (id) ON DELETE CASCADE,
      status         text NOT NULL,
      amount_fen     bigint NOT NULL,
      content_hash   text NOT NULL,
      recorded_at    timestamptz NOT NULL DEFAULT now(),
      import_run_id  bigint REFERENCES import_run (id),
      UNIQUE (activity_id, content_hash)
    )
    """,
    """
    CREATE TRIGGER activity_event_append_only BEFORE UPDATE OR DELETE ON activity_event
      FOR EACH ROW WHEN (current_setting('hub.erasing', true) IS DISTINCT FROM 'on')
      EXECUTE FUNCTION hub_reject_change()
    """,
    """
    CREATE TABLE import_row_error (
      id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      import_run_id  bigint NOT NULL REFERENCES import_run (id) ON DELETE CASCADE,
      file           text NOT NULL,
      line           integer NOT NULL,
      column_name    text,
      code           text NOT NULL,
      reason         text NOT NULL,
      raw_masked     text
    )
    """,
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for table in (
        "import_row_error",
        "activity_event",
        "activity",
        "source_observation",
        "source_identifier",
        "source_record",
        "import_run",
    ):
        op.execute(f"DROP TABLE {table}")
