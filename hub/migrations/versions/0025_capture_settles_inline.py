"""A whole capture writes its settlement entries itself, not through ``settlement_record``.

Captures run one after another on the redemption bench's busiest path (``hub.core.batch``
sends a function's calls one batch at a time), so a capture's server time sets the pace.
``redemption_capture_all`` called ``settlement_record`` for its entries: a PL/pgSQL call (its
own statement, set-up and three look-ups) for what is one more data-modifying CTE beside the
postings. It now takes the period lock's shared side and finds the open period itself, as
``settlement_record`` does, and inserts the entries in the postings' statement: ~20 µs less
server time per capture (pg_stat_statements and pg_stat_user_functions on a private
PostgreSQL 15, bench/README.md "Fifteenth session"). Same entries, same period rule (a closed
period's entries go to the next open one), same lock; ``settlement_record`` stays for partial
captures and refunds, and ``settlement_entry_open_period`` still refuses a closed period.

The lock and the period rule are one function, ``settlement_period_for``, which
``settlement_record`` now calls too. It is taken only when a lot was issued by another line
(points spent where they were issued owe nobody), as before.

``jit = off`` beside every ``enable_seqscan = off`` (0015, 0024): under that setting a query
with no index to take (``settlement_period_for``'s closed-period fallback) is costed past
``jit_above_cost`` and was JIT-compiled on every call — 0.3–0.4 s a capture into a closed
month. On the functions, not the connection: PgBouncer refuses unknown startup parameters.

Revision ID: 0025
Revises: 0024
"""

from alembic import op

from hub.core.migrate import earlier_migration

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

PERIOD_FOR = """
CREATE FUNCTION settlement_period_for(p_period date) RETURNS text LANGUAGE plpgsql AS $$
    -- The period an entry effective in p_period's month goes to: that month, or the first
    -- after it that is not closed (at most 120 months on). Under the period lock's shared side
    -- (close_period takes it exclusively), so a period closing is closed before the entry or
    -- after it.
    DECLARE
      v_period text := to_char(p_period, 'YYYY-MM');
    BEGIN
      PERFORM pg_advisory_xact_lock_shared(settlement_lock_key());
      IF EXISTS (SELECT 1 FROM settlement_period WHERE period = v_period AND state = 'closed') THEN
        SELECT min(to_char(m, 'YYYY-MM')) INTO v_period
          FROM generate_series(p_period, p_period + interval '120 months', interval '1 month') m
         WHERE to_char(m, 'YYYY-MM') NOT IN
           (SELECT period FROM settlement_period WHERE state = 'closed');
      END IF;
      RETURN v_period;
    END $$
"""

RECORD = """
CREATE OR REPLACE FUNCTION settlement_record(p_hold bigint, p_line text, p_event text,
                                             p_at timestamptz, p_period date, p_issuers text[],
                                             p_points bigint[], p_fen bigint[],
                                             p_prices numeric[])
    RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
      v_period text;
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM unnest(p_issuers, p_points) AS v(issuer, points)
                      WHERE v.issuer <> p_line AND v.points <> 0) THEN
        RETURN;  -- points spent where they were issued owe nobody
      END IF;
      v_period := settlement_period_for(p_period);  -- the lock before the insert's snapshot
      INSERT INTO settlement_entry (period, issuer_line, redeeming_line, points, amount_fen,
        fen_per_point, hold_id, kind, event, key, effective_at)
      SELECT v_period, v.issuer, p_line, v.points, v.fen, v.price, p_hold,
             CASE WHEN v.points > 0 THEN 'capture' ELSE 'refund' END,
             p_event, p_event || '/' || v.issuer, p_at
        FROM unnest(p_issuers, p_points, p_fen, p_prices) AS v(issuer, points, fen, price)
       WHERE v.issuer <> p_line AND v.points <> 0;
    END $$
"""


CAPTURE_ALL = """
CREATE OR REPLACE FUNCTION redemption_capture_all(
        p_hold redemption_hold, p_at timestamptz, p_at_iso text, p_period date,
        p_issuers text[], p_prices numeric[], p_group_line text)
    RETURNS jsonb LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
    DECLARE
      v_event text := 'redeem:' || p_hold.id || ':capture';
      v_lots jsonb;
      v_lot_issuers text[];
      v_lot_points bigint[];
      v_available bigint;
      v_period text;
    BEGIN
      WITH l AS (
        UPDATE redemption_hold_lot SET captured = points WHERE hold_id = p_hold.id
        RETURNING seq, lot_id, issuer_line, points, refunded)
      SELECT jsonb_agg(jsonb_build_object('lot_id', lot_id, 'issuer_line', issuer_line,
                                          'points', points, 'captured', points,
                                          'refunded', refunded) ORDER BY seq),
             array_agg(issuer_line), array_agg(points),
             (SELECT balance FROM loyalty_account
               WHERE kind = 'member_available' AND coalesce(member_id, 0) = p_hold.member_id
                 AND coalesce(line, '') = '')
        INTO v_lots, v_lot_issuers, v_lot_points, v_available FROM l;
      IF NOT (p_hold.line = ALL (v_lot_issuers)) THEN  -- points issued elsewhere settle
        v_period := settlement_period_for(p_period);
      END IF;
      -- The postings in one statement (line accounts found by the identity index, created on
      -- first use as ever): the hold's points spent at its line, and per issuing line its
      -- points used up; and what each other issuing line owes the redeeming line, at its
      -- price, in the period found above (settlement_record's entries, without its call).
      WITH line AS (
        SELECT max(id) FILTER (WHERE kind = 'redemption_hold') AS held,
               max(id) FILTER (WHERE kind = 'redemption_clearing') AS clearing
          FROM loyalty_account
         WHERE kind IN ('redemption_hold', 'redemption_clearing') AND coalesce(member_id, 0) = 0
           AND coalesce(line, '') = p_hold.line),
      spent AS (
        INSERT INTO loyalty_transfer (debit_account, credit_account, amount, code,
                                      idempotency_key, effective_at)
        SELECT coalesce(held, redemption_line_account('redemption_hold', p_hold.line)),
               coalesce(clearing, redemption_line_account('redemption_clearing', p_hold.line)),
               p_hold.points, 'capture', v_event || '/spent', p_at
          FROM line),
      g AS (
        SELECT v.issuer, sum(v.points)::bigint AS points
          FROM unnest(v_lot_issuers, v_lot_points) AS v(issuer, points) GROUP BY v.issuer),
      used AS (
        INSERT INTO loyalty_transfer (debit_account, credit_account, amount, code,
                                      idempotency_key, effective_at)
        SELECT coalesce(a.clearing, redemption_line_account('redemption_clearing', g.issuer)),
               coalesce(a.issuance, redemption_line_account('issuance', g.issuer)), g.points,
               'redeem', v_event || '/issuer:' || g.issuer, p_at
          FROM g CROSS JOIN LATERAL (
            SELECT max(id) FILTER (WHERE kind = 'redemption_clearing') AS clearing,
                   max(id) FILTER (WHERE kind = 'issuance') AS issuance
              FROM loyalty_account
             WHERE kind IN ('redemption_clearing', 'issuance') AND coalesce(member_id, 0) = 0
               AND coalesce(line, '') = g.issuer) a
         ORDER BY g.issuer COLLATE "C"),
      prices AS (
        SELECT g.issuer, g.points,
               CASE WHEN g.issuer = p_group_line THEN p_hold.fen_per_point
                    ELSE coalesce(p_prices[array_position(p_issuers, g.issuer)], 0) END AS price
          FROM g WHERE g.issuer <> p_hold.line)
      INSERT INTO settlement_entry (period, issuer_line, redeeming_line, points, amount_fen,
        fen_per_point, hold_id, kind, event, key, effective_at)
      SELECT v_period, pr.issuer, p_hold.line, pr.points, round(pr.points * pr.price)::bigint,
             pr.price, p_hold.id, 'capture', v_event, v_event || '/' || pr.issuer, p_at
        FROM prices pr
       WHERE v_period IS NOT NULL
       ORDER BY pr.issuer COLLATE "C";
      RETURN jsonb_build_object('ok', jsonb_build_object(
        'id', p_hold.id, 'member_id', p_hold.member_id, 'line', p_hold.line,
        'points', p_hold.points, 'order_ref', p_hold.order_ref, 'state', p_hold.state,
        'captured_points', p_hold.captured_points, 'refunded_points', p_hold.refunded_points,
        'amount_fen', floor(p_hold.captured_points * p_hold.fen_per_point)::bigint,
        'created_at', redemption_iso(p_hold.created_at),
        'expires_at', redemption_iso(p_hold.expires_at),
        'resolved_at', p_at_iso,
        'available', v_available,
        'lots', coalesce(v_lots, '[]'),
        'replayed', false));
    END $$;
"""


def _seqscan_off() -> tuple[str, ...]:
    """The functions 0015 and 0024 plan with enable_seqscan = off."""
    return (
        *earlier_migration("0015_redemption_index_plans")._FUNCTIONS,
        earlier_migration("0024_redemption_hold_plans")._HOLD,
    )


def upgrade() -> None:
    # Straight to the driver: op.execute would read ``:capture`` in the bodies as a parameter.
    bind = op.get_bind()
    for statement in (PERIOD_FOR, RECORD, CAPTURE_ALL):
        bind.exec_driver_sql(statement)
    for function in _seqscan_off():
        bind.exec_driver_sql(f"ALTER FUNCTION {function} SET jit = off")


def downgrade() -> None:
    bind = op.get_bind()
    for function in _seqscan_off():
        bind.exec_driver_sql(f"ALTER FUNCTION {function} RESET jit")
    (capture_all,) = [
        s
        for s in earlier_migration("0010_redemption_fast").STATEMENTS
        if "CREATE FUNCTION redemption_capture_all(" in s
    ]
    (record,) = [
        s
        for s in earlier_migration("0008_redemption_functions").FUNCTIONS
        if "CREATE FUNCTION settlement_record(" in s
    ]
    for statement in (capture_all, record):
        bind.exec_driver_sql(statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    bind.exec_driver_sql("DROP FUNCTION settlement_period_for(date)")
