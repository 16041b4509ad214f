"""Redemption, fewer writes per hold and capture: no per-row foreign-key checks, HOT balance updates.

Measured with ``bench/redemption.py`` (``perf`` on the backends, ``pg_stat_statements`` with
nested statements, ``pg_stat_user_tables``), per hold plus capture on 0010's functions:

- Three foreign-key checks ran per redemption: ``redemption_hold.member_id`` (the hold's
  insert), ``redemption_hold_lot.hold_id`` (the same statement) and ``settlement_entry.hold_id``
  (the capture). Each is an AFTER trigger: a queued event, an SPI query with its own executor
  start, and a ``FOR KEY SHARE`` lock of the parent row (a WAL record, and the member's row
  locked by every hold of that member). The backends' after-trigger work was ~14 % of their CPU
  (``standard_ExecutorFinish``, ``perf``).
- ``loyalty_account``'s balance updates were mostly not HOT: accounts are created densely (the
  ledger opens a member's three accounts together), so the page of a member's available
  account had no room for its new version, and each update wrote three index entries.

What changes (the references still hold, by construction and by triggers, as in 0009–0011):

- The three foreign keys are dropped. A hold is inserted only by ``redemption_hold_points``,
  for the member whose available account it has just locked; that account references the
  member (a foreign key that stays), and accounts are never deleted or renumbered
  (``loyalty_account_keep``, 0010), so the member outlives its holds. A hold's lots are inserted
  by the statement that inserts the hold, from the id it returns; settlement entries by
  ``settlement_record`` for a hold its caller has locked. Holds are never deleted, and now never
  renumbered either: ``redemption_hold_guard`` refuses a change of ``id`` as it refuses a change
  of the amounts. ``hub ledger check`` reports any hold lot or settlement entry naming a missing
  hold, and any hold naming a missing member (``check_hold_references``).
- ``loyalty_account`` gets ``fillfactor = 80``: pages keep room for the next version of their
  rows, so a balance update stays on its page and writes no index entry (a HOT update). Applies
  to pages written from now on; ``VACUUM FULL loyalty_account`` applies it to existing ones.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_GUARD = """
CREATE OR REPLACE FUNCTION redemption_hold_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'redemption holds are never deleted' USING ERRCODE = 'check_violation';
  END IF;
  IF (NEW.member_id, NEW.line, NEW.points, NEW.order_ref, NEW.fen_per_point, NEW.created_at,
      NEW.expires_at{id_new}) IS DISTINCT FROM (OLD.member_id, OLD.line, OLD.points, OLD.order_ref,
      OLD.fen_per_point, OLD.created_at, OLD.expires_at{id_old}) THEN
    RAISE EXCEPTION 'hold %: only its state and amounts may change', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  IF OLD.state IN ('cancelled', 'expired', 'refunded')
     OR (OLD.state = 'pending' AND NEW.state NOT IN ('captured', 'cancelled', 'expired'))
     OR (OLD.state = 'captured' AND (NEW.state NOT IN ('captured', 'refunded')
         OR NEW.captured_points <> OLD.captured_points
         OR NEW.refunded_points < OLD.refunded_points
         OR NEW.resolved_at IS DISTINCT FROM OLD.resolved_at)) THEN
    RAISE EXCEPTION 'hold % cannot go from % to %', OLD.id, OLD.state, NEW.state
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$
"""

_FOREIGN_KEYS = (
    ("redemption_hold", "redemption_hold_member_id_fkey", "member_id", "member"),
    ("redemption_hold_lot", "redemption_hold_lot_hold_id_fkey", "hold_id", "redemption_hold"),
    ("settlement_entry", "settlement_entry_hold_id_fkey", "hold_id", "redemption_hold"),
)


def upgrade() -> None:
    for table, name, _, _ in _FOREIGN_KEYS:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    op.execute(_GUARD.format(id_new=", NEW.id", id_old=", OLD.id"))
    op.execute("ALTER TABLE loyalty_account SET (fillfactor = 80)")


def downgrade() -> None:
    op.execute("ALTER TABLE loyalty_account RESET (fillfactor)")
    op.execute(_GUARD.format(id_new="", id_old=""))
    for table, name, column, parent in _FOREIGN_KEYS:
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} "
            f"FOREIGN KEY ({column}) REFERENCES {parent} (id)"
        )
