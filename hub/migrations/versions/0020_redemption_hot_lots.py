"""Redemption, fewer writes per hold: HOT lot updates, the ledger's list CHECKs as triggers.

Measured with ``bench/redemption.py`` (CPU per operation, ``pg_stat_user_tables``) and
``pgbench`` loops of the single statements on the bench's seeded database:

- A hold's ``UPDATE loyalty_lot SET remaining = …`` was never HOT: ``remaining`` was in four of
  the table's seven indexes (``remaining > 0`` in the predicates of ``loyalty_lot_member``,
  ``loyalty_lot_member_live``, ``loyalty_lot_expiring`` and ``loyalty_lot_pending``, and in
  ``loyalty_lot_member_live``'s INCLUDE), so every hold, refund and return wrote a new index
  entry in each of the six indexes whose predicate the lot met. PostgreSQL updates in place (HOT)
  when no indexed column's *value* changes; so the predicates now name a stored generated
  column, ``has_points`` (``remaining > 0``), which changes only when a lot is used up or
  refilled from zero, and ``remaining`` leaves the INCLUDE. A hold that leaves points in its
  lots writes no lot index entry. Readers say ``has_points`` where they said ``remaining > 0``
  (the same rows: ``remaining`` is NOT NULL); ``redemption_hold_points`` (0010) is re-created
  with it. The profile views' lot parts read ``remaining`` from the heap now (one page per
  live lot of the member; the index still holds only live lots), where they were index-only.
- ``loyalty_account``'s ``kind IN (…)`` list and kind/member rule, and ``loyalty_lot``'s state
  list and positive amount, were CHECK constraints: PostgreSQL reads, plans and initialises
  every CHECK of a table for each statement that writes it, so each balance and lot update paid
  for them (~15–35 µs per statement measured) though it changes none of those columns. They
  are now BEFORE triggers on ``INSERT OR UPDATE OF`` the columns they read, raising the same
  error (23514, the same constraint names). The balance backstops stay plain CHECKs:
  ``balance >= 0 OR allow_negative``, ``(member_id IS NULL) = (balance IS NULL)`` and
  ``remaining BETWEEN 0 AND amount``. (Triggers do not run with ``session_replication_role =
  replica``; nothing in the hub sets it.)

Adding a stored column rewrites ``loyalty_lot`` under an exclusive lock (seconds per million
lots); the indexes are rebuilt with it.

Revision ID: 0020
Revises: 0019
"""


from alembic import op

from hub.core.migrate import earlier_migration

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_KINDS = (
    "'member_available', 'member_pending', 'member_debt', 'issuance', 'redemption_clearing', "
    "'expiry', 'adjustment', 'redemption_hold'"
)

# (name, definition with {live} for the predicate's "has points left")
_LOT_INDEXES = (
    ("loyalty_lot_member", "(member_id, state) WHERE {live}"),
    (
        "loyalty_lot_member_live",
        "(member_id, expires_at) INCLUDE (issuer_line{remaining}) "
        "WHERE state = 'available' AND {live}",
    ),
    ("loyalty_lot_expiring", "(expires_at) WHERE state = 'available' AND {live}"),
    ("loyalty_lot_pending", "(pending_until) WHERE state = 'pending' AND {live}"),
)


def _check(table: str, constraint: str, condition: str) -> str:
    """A former CHECK as a trigger raises it: the same error code, message and names (a NULL
    result passes, as a CHECK's does)."""
    return f"""
      IF NOT ({condition}) THEN
        RAISE EXCEPTION 'new row for relation "{table}" violates check constraint '
                        '"{constraint}"'
          USING ERRCODE = 'check_violation', CONSTRAINT = '{constraint}',
                TABLE = '{table}', SCHEMA = TG_TABLE_SCHEMA;
      END IF;"""


def _validating_trigger(table: str, columns: str, checks: list[tuple[str, str]]) -> list[str]:
    """``{table}_valid``: the table's former list CHECKs (constraint, condition), run before an
    insert or an update of ``columns``."""
    body = "".join(_check(table, constraint, condition) for constraint, condition in checks)
    return [
        f"""
    CREATE FUNCTION {table}_valid() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN{body}
      RETURN NEW;
    END $$
    """,
        f"""
    CREATE TRIGGER {table}_valid BEFORE INSERT OR UPDATE OF {columns}
      ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_valid()
    """,
    ]


_TRIGGERS = [
    *_validating_trigger(
        "loyalty_account",
        "kind, member_id",
        [
            ("loyalty_account_kind_check", f"NEW.kind IN ({_KINDS})"),
            ("loyalty_account_check1", "(NEW.member_id IS NULL) <> (NEW.kind LIKE 'member_%')"),
        ],
    ),
    *_validating_trigger(
        "loyalty_lot",
        "state, amount",
        [
            ("loyalty_lot_state_check", "NEW.state IN ('pending', 'available')"),
            ("loyalty_lot_amount_check", "NEW.amount > 0"),
        ],
    ),
]


def _hold_points_0010() -> str:
    """0010's ``redemption_hold_points``, the definition in force until now."""
    found = [s for s in earlier_migration("0010_redemption_fast").STATEMENTS if "FUNCTION redemption_hold_points(" in s]
    if len(found) != 1:  # pragma: no cover - the earlier migration is fixed
        raise RuntimeError(f"expected one redemption_hold_points in 0010, found {len(found)}")
    return str(found[0])


def _hold_points_has_points() -> str:
    """0010's ``redemption_hold_points``, its usable lots found by ``has_points``."""
    body = _hold_points_0010()
    old = "state = 'available' AND remaining > 0"
    if body.count(old) != 1:  # pragma: no cover - the earlier migration is fixed
        raise RuntimeError("0010's redemption_hold_points reads its lots differently")
    return body.replace(old, "state = 'available' AND has_points")


def _lot_indexes(*, live: str, remaining: str) -> list[str]:
    return [
        f"CREATE INDEX {name} ON loyalty_lot "
        + definition.format(live=live, remaining=remaining)
        for name, definition in _LOT_INDEXES
    ]


def upgrade() -> None:
    # Straight to the driver: op.execute would read ``:`` in the function bodies.
    bind = op.get_bind()
    run = bind.exec_driver_sql
    run("DROP INDEX " + ", ".join(name for name, _ in _LOT_INDEXES))
    run(
        "ALTER TABLE loyalty_lot ADD COLUMN has_points boolean "
        "GENERATED ALWAYS AS (remaining > 0) STORED"
    )
    for statement in _lot_indexes(live="has_points", remaining=""):
        run(statement)
    run(_hold_points_has_points())
    run(
        "ALTER TABLE loyalty_account DROP CONSTRAINT loyalty_account_kind_check, "
        "DROP CONSTRAINT loyalty_account_check1"
    )
    run(
        "ALTER TABLE loyalty_lot DROP CONSTRAINT loyalty_lot_state_check, "
        "DROP CONSTRAINT loyalty_lot_amount_check"
    )
    for statement in _TRIGGERS:
        run(statement)


def downgrade() -> None:
    bind = op.get_bind()
    run = bind.exec_driver_sql
    run("DROP TRIGGER loyalty_lot_valid ON loyalty_lot")
    run("DROP FUNCTION loyalty_lot_valid()")
    run("DROP TRIGGER loyalty_account_valid ON loyalty_account")
    run("DROP FUNCTION loyalty_account_valid()")
    run(
        "ALTER TABLE loyalty_lot ADD CONSTRAINT loyalty_lot_state_check "
        "CHECK (state IN ('pending', 'available')), "
        "ADD CONSTRAINT loyalty_lot_amount_check CHECK (amount > 0)"
    )
    run(
        f"ALTER TABLE loyalty_account ADD CONSTRAINT loyalty_account_kind_check "
        f"CHECK (kind IN ({_KINDS})), "
        "ADD CONSTRAINT loyalty_account_check1 "
        "CHECK ((member_id IS NULL) <> (kind LIKE 'member_%'))"
    )
    run(_hold_points_0010())
    run("DROP INDEX " + ", ".join(name for name, _ in _LOT_INDEXES))
    run("ALTER TABLE loyalty_lot DROP COLUMN has_points")
    for statement in _lot_indexes(live="remaining > 0", remaining=", remaining"):
        run(statement)
