"""Redemption, fewer statements per call: a hold is two statements, a whole capture three.

Measured with ``perf`` on a backend running ``bench/redemption.py`` (migration 0010's
functions, ~15 statements per hold plus capture, each in a nested function): about a third of
the database's CPU went to what every statement pays whatever it does — executor start-up and
shut-down, opening the tables and their indexes, re-reading each table's CHECK constraints from
the catalog (PostgreSQL 15 parses them anew for every statement that writes the table) — and a
sixth to the two commits. The rows written are the same; what costs is how many statements
write them.

Two functions, each the whole call in one statement's worth of work for its common case, and
the general functions of 0008/0010 for everything else (a key seen before, a redemption code,
an error Python found, a partial capture, a hold no longer pending or past its TTL, points
short):

- ``redemption_hold_now``: (1) the member's available account debited and locked by one
  ``UPDATE … WHERE balance >= points AND <the key is new>``, then (2) one statement that reads
  the usable lots (a new snapshot, after the lock: every writer of a member's lots holds that
  lock), takes them FIFO, and writes the lots, the hold, its lots, its posting and the
  idempotency key with its stored outcome — or nothing, when the usable lots fall short of the
  balance (lots past their expiry not yet swept), and the debit is put back and the general
  function reports the error.
- ``redemption_capture_now`` (whole capture): (1) the ``UPDATE`` of 0010 that locks, checks
  and moves the hold, now also requiring the key to be new, (2) settlement's shared advisory
  lock (``close_period`` takes it exclusively; the next statement reads the closed periods
  after it), (3) one statement for the hold's lots, the postings, the settlement entries (in
  the first month from the capture's that is not closed, as ``settlement_record``), the member's
  available points and the key with its stored outcome.

The idempotency key is written once, with its outcome, at the end, instead of claimed first
and updated at the end: a call whose key was committed first by a concurrent call with the
same key fails on the key's primary key (``unique_violation``) and rolls back whole;
``run_redemption`` runs it again and it replays. The general functions still claim first.

Both return columns, not jsonb: the client decodes them natively (decoding the jsonb outcome
was a tenth of the client's time per call); ``outcome`` is set only when a general function
answered, with its jsonb as before.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# 0006's guard, and a hold's id never changes either: what the two foreign keys dropped below
# protected (a hold's lots and settlement entries name it) now follows from holds never being
# deleted or renumbered, as 0010 did for the accounts transfers name.
_GUARD = """
    CREATE OR REPLACE FUNCTION redemption_hold_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'redemption holds are never deleted' USING ERRCODE = 'check_violation';
      END IF;
      IF (NEW.id, NEW.member_id, NEW.line, NEW.points, NEW.order_ref, NEW.fen_per_point,
          NEW.created_at, NEW.expires_at) IS DISTINCT FROM (OLD.id, OLD.member_id, OLD.line,
          OLD.points, OLD.order_ref, OLD.fen_per_point, OLD.created_at, OLD.expires_at) THEN
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

STATEMENTS = [
    _GUARD,
    "ALTER TABLE redemption_hold_lot DROP CONSTRAINT redemption_hold_lot_hold_id_fkey",
    "ALTER TABLE settlement_entry DROP CONSTRAINT settlement_entry_hold_id_fkey",
]

FUNCTIONS = [
    """
    CREATE FUNCTION redemption_hold_now(
        p_scope text, p_key text, p_request_hash text, p_request jsonb, p_error jsonb,
        p_member bigint, p_code_hash text, p_actor text, p_actor_role text, p_line text,
        p_points bigint, p_order_ref text, p_rate numeric, p_reason text, p_at timestamptz,
        p_expires_at timestamptz, p_view jsonb,
        OUT o_hold bigint, OUT o_available bigint, OUT o_lot_ids bigint[],
        OUT o_lot_issuers text[], OUT o_lot_points bigint[], OUT o_outcome jsonb)
    LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
    DECLARE
      v_account bigint;
      v_have bigint;
    BEGIN
      IF p_error IS NULL AND p_code_hash IS NULL AND p_member IS NOT NULL THEN
        UPDATE loyalty_account a SET balance = a.balance - p_points
         WHERE a.kind = 'member_available' AND coalesce(a.member_id, 0) = p_member
           AND coalesce(a.line, '') = '' AND a.balance >= p_points
           AND (p_key IS NULL OR NOT EXISTS (
                 SELECT 1 FROM idempotency_key k WHERE k.scope = p_scope AND k.key = p_key))
        RETURNING a.id INTO v_account;
        IF v_account IS NOT NULL THEN
          -- Usable lots (available, points left, not expired at p_at), burned FIFO by expiry;
          -- every write below only when they cover the hold.
          WITH usable AS (
            SELECT l.id, l.issuer_line, l.remaining,
                   sum(l.remaining) OVER (ORDER BY l.expires_at IS NULL,
                                                   coalesce(l.expires_at, l.earned_at),
                                                   l.earned_at, l.id) - l.remaining AS before
              FROM loyalty_lot l
             WHERE l.member_id = p_member AND l.state = 'available' AND l.remaining > 0
               AND (l.expires_at IS NULL OR p_at < l.expires_at)),
          have AS (SELECT coalesce(sum(u.remaining), 0)::bigint AS n FROM usable u),
          pick AS (
            SELECT u.id, u.issuer_line, least(u.remaining, p_points - u.before) AS take,
                   (row_number() OVER (ORDER BY u.before) - 1)::int AS seq
              FROM usable u, have WHERE have.n >= p_points AND u.before < p_points),
          taken AS (
            SELECT array_agg(p.id ORDER BY p.seq) AS ids,
                   array_agg(p.issuer_line ORDER BY p.seq) AS issuers,
                   array_agg(p.take ORDER BY p.seq) AS takes,
                   jsonb_agg(jsonb_build_object('lot_id', p.id, 'issuer_line', p.issuer_line,
                                                'points', p.take, 'captured', 0,
                                                'refunded', 0) ORDER BY p.seq) AS lots
              FROM pick p),
          spent AS (
            UPDATE loyalty_lot l SET remaining = l.remaining - p.take
              FROM pick p WHERE l.id = p.id),
          h AS (
            INSERT INTO redemption_hold (member_id, line, points, order_ref, state,
                                         fen_per_point, actor, actor_role, reason, created_at,
                                         expires_at)
            SELECT p_member, p_line, p_points, p_order_ref, 'pending', p_rate, p_actor,
                   p_actor_role, p_reason, p_at, p_expires_at
              FROM have WHERE have.n >= p_points
            RETURNING id),
          hl AS (
            INSERT INTO redemption_hold_lot (hold_id, seq, lot_id, issuer_line, points)
            SELECT h.id, p.seq, p.id, p.issuer_line, p.take FROM h, pick p),
          t AS (
            INSERT INTO loyalty_transfer (debit_account, credit_account, amount, code,
                                          idempotency_key, agent, reason, effective_at)
            SELECT v_account,
                   coalesce((SELECT a.id FROM loyalty_account a
                              WHERE a.kind = 'redemption_hold' AND coalesce(a.member_id, 0) = 0
                                AND coalesce(a.line, '') = p_line),
                            redemption_line_account('redemption_hold', p_line)),
                   p_points, 'hold', 'redeem:' || h.id || ':hold/available',
                   CASE WHEN p_reason IS NOT NULL THEN p_actor END, p_reason, p_at
              FROM h),
          k AS (
            INSERT INTO idempotency_key (scope, key, operation, request_hash, request, response)
            SELECT p_scope, p_key, 'redeem_points', p_request_hash, p_request,
                   jsonb_build_object('ok', coalesce(p_view, '{}') || jsonb_build_object(
                     'id', h.id, 'member_id', p_member, 'available', have.n - p_points,
                     'lots', taken.lots))
              FROM h, have, taken WHERE p_key IS NOT NULL)
        SELECT have.n, (SELECT h.id FROM h), taken.ids, taken.issuers, taken.takes
          INTO v_have, o_hold, o_lot_ids, o_lot_issuers, o_lot_points
          FROM have, taken;
          IF o_hold IS NOT NULL THEN
            o_available := v_have - p_points;
            RETURN;
          END IF;
          -- Fewer usable points than the balance: put the debit back (the lock stays) and let
          -- the general function find and remember the error.
          UPDATE loyalty_account SET balance = balance + p_points WHERE id = v_account;
        END IF;
      END IF;
      o_outcome := redemption_place_hold(
        p_scope, p_key, p_request_hash, p_request, p_error, p_member, p_code_hash, p_actor,
        p_actor_role, p_line, p_points, p_order_ref, p_rate, p_reason, p_at, p_expires_at,
        p_view);
    END $$
    """,
    """
    CREATE FUNCTION redemption_capture_now(
        p_scope text, p_key text, p_request_hash text, p_request jsonb, p_hold bigint,
        p_points bigint, p_scope_member bigint, p_scope_line text, p_at timestamptz,
        p_at_iso text, p_period date, p_issuers text[], p_prices numeric[], p_group_line text,
        OUT o_member bigint, OUT o_line text, OUT o_points bigint, OUT o_order_ref text,
        OUT o_refunded bigint, OUT o_amount_fen bigint, OUT o_created_at timestamptz,
        OUT o_expires_at timestamptz, OUT o_available bigint, OUT o_lot_ids bigint[],
        OUT o_lot_issuers text[], OUT o_lot_points bigint[], OUT o_lot_refunded bigint[],
        OUT o_outcome jsonb)
    LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
    DECLARE
      v_hold redemption_hold;
      v_event text := 'redeem:' || p_hold || ':capture';
    BEGIN
      IF p_points IS NULL THEN
        -- 0010's whole capture: the conditions as one CASE keep the primary key the only index
        -- the planner can use.
        UPDATE redemption_hold h SET state = 'captured', captured_points = h.points,
                                     resolved_at = p_at
         WHERE h.id = p_hold
           AND CASE WHEN h.state = 'pending' AND h.expires_at > p_at
                     AND h.member_id = coalesce(p_scope_member, h.member_id)
                     AND h.line = coalesce(p_scope_line, h.line) THEN true ELSE false END
           AND (p_key IS NULL OR NOT EXISTS (
                 SELECT 1 FROM idempotency_key k WHERE k.scope = p_scope AND k.key = p_key))
        RETURNING h.* INTO v_hold;
      END IF;
      IF v_hold.id IS NULL THEN
        o_outcome := redemption_capture(p_scope, p_key, p_request_hash, p_request, p_hold,
                                        p_points, p_scope_member, p_scope_line, p_at, p_at_iso,
                                        p_period, p_issuers, p_prices, p_group_line);
        RETURN;
      END IF;
      -- Before the statement that reads the closed periods (settlement_record's order).
      PERFORM pg_advisory_xact_lock_shared(settlement_lock_key());
      WITH l AS (
        UPDATE redemption_hold_lot hl SET captured = hl.points WHERE hl.hold_id = p_hold
        RETURNING hl.seq, hl.lot_id, hl.issuer_line, hl.points, hl.refunded),
      g AS (
        SELECT l.issuer_line AS issuer, sum(l.points)::bigint AS points
          FROM l GROUP BY l.issuer_line),
      line AS (
        SELECT max(a.id) FILTER (WHERE a.kind = 'redemption_hold') AS held,
               max(a.id) FILTER (WHERE a.kind = 'redemption_clearing') AS clearing
          FROM loyalty_account a
         WHERE a.kind IN ('redemption_hold', 'redemption_clearing')
           AND coalesce(a.member_id, 0) = 0 AND coalesce(a.line, '') = v_hold.line),
      -- The hold's points spent at its line, then per issuing line its points used up: one
      -- INSERT (the ledger's rows in that order, as 0010's two).
      posted AS (
        INSERT INTO loyalty_transfer (debit_account, credit_account, amount, code,
                                      idempotency_key, effective_at)
        SELECT coalesce(line.held, redemption_line_account('redemption_hold', v_hold.line)),
               coalesce(line.clearing,
                        redemption_line_account('redemption_clearing', v_hold.line)),
               v_hold.points, 'capture', v_event || '/spent', p_at
          FROM line
        UNION ALL
        (SELECT coalesce(a.clearing, redemption_line_account('redemption_clearing', g.issuer)),
                coalesce(a.issuance, redemption_line_account('issuance', g.issuer)), g.points,
                'redeem', v_event || '/issuer:' || g.issuer, p_at
           FROM g CROSS JOIN LATERAL (
             SELECT max(x.id) FILTER (WHERE x.kind = 'redemption_clearing') AS clearing,
                    max(x.id) FILTER (WHERE x.kind = 'issuance') AS issuance
               FROM loyalty_account x
              WHERE x.kind IN ('redemption_clearing', 'issuance')
                AND coalesce(x.member_id, 0) = 0 AND coalesce(x.line, '') = g.issuer) a
          ORDER BY g.issuer COLLATE "C")),
      -- What each other issuing line owes the redeeming line, at its price (points an agent
      -- added, issuer p_group_line, at the redeeming line's own rate), in the first month from
      -- p_period that is not closed.
      owed AS (
        SELECT g.issuer, g.points, pr.price, round(g.points * pr.price)::bigint AS fen
          FROM g CROSS JOIN LATERAL (
            SELECT CASE WHEN g.issuer = p_group_line THEN v_hold.fen_per_point
                        ELSE coalesce(p_prices[array_position(p_issuers, g.issuer)], 0)
                   END AS price) pr
         WHERE g.issuer <> v_hold.line),
      per AS (
        SELECT CASE WHEN NOT EXISTS (
                      SELECT 1 FROM settlement_period s
                       WHERE s.period = to_char(p_period, 'YYYY-MM') AND s.state = 'closed')
                    THEN to_char(p_period, 'YYYY-MM')
                    ELSE (SELECT min(to_char(m, 'YYYY-MM'))
                            FROM generate_series(p_period, p_period + interval '120 months',
                                                 interval '1 month') m
                           WHERE to_char(m, 'YYYY-MM') NOT IN
                             (SELECT s.period FROM settlement_period s
                               WHERE s.state = 'closed'))
               END AS period),
      se AS (
        INSERT INTO settlement_entry (period, issuer_line, redeeming_line, points, amount_fen,
                                      fen_per_point, hold_id, kind, event, key, effective_at)
        SELECT per.period, o.issuer, v_hold.line, o.points, o.fen, o.price, p_hold, 'capture',
               v_event, v_event || '/' || o.issuer, p_at
          FROM owed o, per ORDER BY o.issuer COLLATE "C"),
      acct AS (
        SELECT (SELECT a.balance FROM loyalty_account a
                 WHERE a.kind = 'member_available'
                   AND coalesce(a.member_id, 0) = v_hold.member_id
                   AND coalesce(a.line, '') = '') AS balance),
      lots AS (
        SELECT array_agg(l.lot_id ORDER BY l.seq) AS ids,
               array_agg(l.issuer_line ORDER BY l.seq) AS issuers,
               array_agg(l.points ORDER BY l.seq) AS points,
               array_agg(l.refunded ORDER BY l.seq) AS refunded,
               coalesce(jsonb_agg(jsonb_build_object('lot_id', l.lot_id,
                                                     'issuer_line', l.issuer_line,
                                                     'points', l.points, 'captured', l.points,
                                                     'refunded', l.refunded) ORDER BY l.seq),
                        '[]') AS js
          FROM l),
      k AS (
        INSERT INTO idempotency_key (scope, key, operation, request_hash, request, response)
        SELECT p_scope, p_key, 'capture', p_request_hash, p_request,
               jsonb_build_object('ok', jsonb_build_object(
                 'id', v_hold.id, 'member_id', v_hold.member_id, 'line', v_hold.line,
                 'points', v_hold.points, 'order_ref', v_hold.order_ref,
                 'state', v_hold.state, 'captured_points', v_hold.captured_points,
                 'refunded_points', v_hold.refunded_points,
                 'amount_fen', floor(v_hold.captured_points * v_hold.fen_per_point)::bigint,
                 'created_at', redemption_iso(v_hold.created_at),
                 'expires_at', redemption_iso(v_hold.expires_at),
                 'resolved_at', p_at_iso, 'available', acct.balance, 'lots', lots.js,
                 'replayed', false))
          FROM acct, lots WHERE p_key IS NOT NULL)
      SELECT acct.balance, lots.ids, lots.issuers, lots.points, lots.refunded
        INTO o_available, o_lot_ids, o_lot_issuers, o_lot_points, o_lot_refunded
        FROM acct, lots;
      o_member := v_hold.member_id;
      o_line := v_hold.line;
      o_points := v_hold.points;
      o_order_ref := v_hold.order_ref;
      o_refunded := v_hold.refunded_points;
      o_amount_fen := floor(v_hold.captured_points * v_hold.fen_per_point)::bigint;
      o_created_at := v_hold.created_at;
      o_expires_at := v_hold.expires_at;
    END $$
    """,
]

SIGNATURES = [
    "redemption_capture_now(text, text, text, jsonb, bigint, bigint, bigint, text, timestamptz, "
    "text, date, text[], numeric[], text)",
    "redemption_hold_now(text, text, text, jsonb, jsonb, bigint, text, text, text, text, bigint, "
    "text, numeric, text, timestamptz, timestamptz, jsonb)",
]


def upgrade() -> None:
    # Straight to the driver: op.execute would read ``:capture`` in the bodies as a parameter.
    bind = op.get_bind()
    for statement in STATEMENTS + FUNCTIONS:
        bind.exec_driver_sql(statement)


def downgrade() -> None:
    bind = op.get_bind()
    for signature in SIGNATURES:
        bind.exec_driver_sql(f"DROP FUNCTION {signature}")
    bind.exec_driver_sql(
        "ALTER TABLE settlement_entry ADD CONSTRAINT settlement_entry_hold_id_fkey "
        "FOREIGN KEY (hold_id) REFERENCES redemption_hold (id)"
    )
    bind.exec_driver_sql(
        "ALTER TABLE redemption_hold_lot ADD CONSTRAINT redemption_hold_lot_hold_id_fkey "
        "FOREIGN KEY (hold_id) REFERENCES redemption_hold (id)"
    )
    # 0006's guard (without the id).
    bind.exec_driver_sql(
        _GUARD.replace("(NEW.id, NEW.member_id", "(NEW.member_id").replace(
            "(OLD.id, OLD.member_id", "(OLD.member_id"
        )
    )
