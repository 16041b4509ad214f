"""Redemption tables' CHECK constraints as one compiled function each: same rules, a fraction of the cost.

PostgreSQL (15 and 16) does not keep a table's CHECK expressions between statements: every
statement that writes the table reads each constraint's stored expression tree back from text,
plans it and initialises it (``ExecRelCheck``). For ``redemption_hold``'s ten constraints that is
~70 µs per statement, measured on a loop of single-row UPDATEs (~10 µs without them), and a
hold plus its capture writes ``redemption_hold`` twice, ``redemption_hold_lot`` twice and
``settlement_entry`` once. Folding the same conditions into one IMMUTABLE PL/pgSQL function per
table, called by a single CHECK, costs ~13 µs per statement on the same loop: the constraint's
tree is one call, and the function's expression is compiled once per session (PL/pgSQL caches
it) and evaluated per row.

Rules are unchanged, condition for condition (each function's body is the AND of the table's
former constraints; columns that may be NULL only appear under ``IS NULL``, so a row passes
exactly when every former constraint passed). A violation is still a ``check_violation``
(23514), now naming ``<table>_valid``. Only the redemption tables change: they are written one
or a few rows per statement. Tables written in bulk (lots, transfers, accounts — including the
balance backstop ``CHECK (balance >= 0 OR allow_negative)``) keep plain constraints, which cost
per statement rather than per row.

Adding the constraints validates existing rows (``NOT VALID`` then ``VALIDATE``, so writes are
not blocked during the scan).

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# (table, function, arguments, body, the former constraints by name)
_TABLES: tuple[tuple[str, str, str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "redemption_hold",
        "redemption_hold_valid",
        "points bigint, order_ref text, state text, fen_per_point numeric, "
        "captured_points bigint, refunded_points bigint, resolved_at timestamptz, "
        "created_at timestamptz, expires_at timestamptz",
        """points > 0
           AND length(order_ref) BETWEEN 1 AND 128
           AND state IN ('pending', 'captured', 'cancelled', 'expired', 'refunded')
           AND fen_per_point >= 0
           AND captured_points >= 0 AND captured_points <= points
           AND refunded_points >= 0 AND refunded_points <= captured_points
           AND (state = 'pending') = (resolved_at IS NULL)
           AND (state IN ('captured', 'refunded')) = (captured_points > 0)
           AND (state = 'refunded') = (refunded_points = captured_points AND captured_points > 0)
           AND expires_at > created_at""",
        (
            ("redemption_hold_points_check", "points > 0"),
            ("redemption_hold_order_ref_check", "length(order_ref) BETWEEN 1 AND 128"),
            (
                "redemption_hold_state_check",
                "state IN ('pending', 'captured', 'cancelled', 'expired', 'refunded')",
            ),
            ("redemption_hold_fen_per_point_check", "fen_per_point >= 0"),
            ("redemption_hold_check", "captured_points >= 0 AND captured_points <= points"),
            (
                "redemption_hold_check1",
                "refunded_points >= 0 AND refunded_points <= captured_points",
            ),
            ("redemption_hold_check2", "(state = 'pending') = (resolved_at IS NULL)"),
            (
                "redemption_hold_check3",
                "(state IN ('captured', 'refunded')) = (captured_points > 0)",
            ),
            (
                "redemption_hold_check4",
                "(state = 'refunded') = (refunded_points = captured_points "
                "AND captured_points > 0)",
            ),
            ("redemption_hold_check5", "expires_at > created_at"),
        ),
    ),
    (
        "redemption_hold_lot",
        "redemption_hold_lot_valid",
        "seq int, points bigint, captured bigint, refunded bigint",
        """seq >= 0 AND points > 0
           AND captured >= 0 AND captured <= points
           AND refunded >= 0 AND refunded <= captured""",
        (
            ("redemption_hold_lot_seq_check", "seq >= 0"),
            ("redemption_hold_lot_points_check", "points > 0"),
            ("redemption_hold_lot_check", "captured >= 0 AND captured <= points"),
            ("redemption_hold_lot_check1", "refunded >= 0 AND refunded <= captured"),
        ),
    ),
    (
        "settlement_entry",
        "settlement_entry_valid",
        "period text, issuer_line text, redeeming_line text, points bigint, "
        "amount_fen bigint, fen_per_point numeric, kind text",
        """period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'
           AND points <> 0
           AND fen_per_point >= 0
           AND kind IN ('capture', 'refund')
           AND issuer_line <> redeeming_line
           AND (kind = 'capture') = (points > 0)
           AND sign(amount_fen) IN (0, sign(points))""",
        (
            ("settlement_entry_period_check", "period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'"),
            ("settlement_entry_points_check", "points <> 0"),
            ("settlement_entry_fen_per_point_check", "fen_per_point >= 0"),
            ("settlement_entry_kind_check", "kind IN ('capture', 'refund')"),
            ("settlement_entry_check", "issuer_line <> redeeming_line"),
            ("settlement_entry_check1", "(kind = 'capture') = (points > 0)"),
            ("settlement_entry_check2", "sign(amount_fen) IN (0, sign(points))"),
        ),
    ),
)


def _columns(arguments: str) -> str:
    return ", ".join(a.split()[0] for a in arguments.split(", "))


def upgrade() -> None:
    bind = op.get_bind()
    for table, function, arguments, body, former in _TABLES:
        bind.exec_driver_sql(
            f"CREATE FUNCTION {function}({arguments}) RETURNS boolean "
            f"LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$ BEGIN RETURN {body}; END $$"
        )
        bind.exec_driver_sql(
            f"ALTER TABLE {table} "
            + ", ".join(f"DROP CONSTRAINT {name}" for name, _ in former)
            + f", ADD CONSTRAINT {function} CHECK ({function}({_columns(arguments)})) NOT VALID"
        )
        bind.exec_driver_sql(f"ALTER TABLE {table} VALIDATE CONSTRAINT {function}")


def downgrade() -> None:
    bind = op.get_bind()
    for table, function, arguments, _, former in _TABLES:
        bind.exec_driver_sql(
            f"ALTER TABLE {table} DROP CONSTRAINT {function}, "
            + ", ".join(f"ADD CONSTRAINT {name} CHECK ({check})" for name, check in former)
        )
        bind.exec_driver_sql(f"DROP FUNCTION {function}({arguments})")
