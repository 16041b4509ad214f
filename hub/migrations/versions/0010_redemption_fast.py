"""Redemption, lighter per call: fewer row locks, statements and index entries per hold and capture.

Measured with ``bench/redemption.py``, ``pg_walinspect`` and ``perf`` on migration 0008's
functions, a hold plus its capture ran ~40 statements and wrote 71 WAL records (6.7 kB), and
much of it was not the postings themselves:

- 11 row locks on ``loyalty_account`` per redemption: the member's three accounts, twice (hold,
  then capture), and the foreign-key checks of each transfer on the shared line accounts
  (``redemption_hold[B]``, ``redemption_clearing[…]``, ``issuance[A]``): every concurrent
  redemption key-share-locks the same few rows, which PostgreSQL turns into MultiXacts.
- A lock on each lot before updating it, and on the hold before updating it.
- Per-statement overhead (executor start-up, plan look-up) across ~40 statements, and one
  statement (``id = ANY(array)`` on the lots) planned anew on every call.
- Three indexes nothing reads (``redemption_hold_order``, ``settlement_entry_event``,
  ``redemption_hold_lot_lot``).

What changes (every rule of migration 0008 stays; cancel, expiry, partial capture and refunds
keep 0008's functions except for the member lock):

- Member locks: a redemption locks the member's ``member_available`` account only — the one
  balance it moves. Every writer of a member's lots or balances locks that account too (the
  ledger's writers lock all three), so they still queue on it; the lock order (accounts, hold,
  lots) is unchanged. ``redemption_lock_hold`` (partial capture, cancel, expiry) likewise.
- Hold: the lots it takes are updated under that lock without locking them first; the hold,
  its lots and its posting are one statement; the idempotency key is claimed and stored inline.
- Whole capture (``points`` not given) of a pending hold within its TTL: one ``UPDATE … WHERE
  id = … AND <pending, in time, in scope>`` is the lock, the state check and the transition at
  once; nothing of the member changes, so no member lock is taken, and the postings and the
  settlement figures are one statement. Anything else (a partial capture, a hold that expired,
  was resolved, is out of scope or does not exist) takes 0008's ``redemption_capture_hold`` and
  gets its typed error, expiry or partial capture from there.
- Transfers' foreign keys to ``loyalty_account`` are dropped: the account ids come from the
  same statement's look-ups, and what the keys protected — an account a transfer names never
  disappears — is now a trigger (accounts are never deleted or renumbered). ``hub ledger
  check`` (``check_double_entry``) still reports any transfer naming a missing account.

With ``Database.transaction`` (a hold or a whole capture is then one statement, sent without
BEGIN and COMMIT) a redemption is two round trips and ~15 statements.

Revision ID: 0010
Revises: 0009
"""


from alembic import op

from hub.core.migrate import earlier_migration

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

STATEMENTS = [
    "DROP INDEX redemption_hold_order",
    "DROP INDEX settlement_entry_event",
    "DROP INDEX redemption_hold_lot_lot",
    "ALTER TABLE loyalty_transfer DROP CONSTRAINT loyalty_transfer_debit_account_fkey",
    "ALTER TABLE loyalty_transfer DROP CONSTRAINT loyalty_transfer_credit_account_fkey",
    """
    CREATE FUNCTION loyalty_account_keep() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'DELETE' OR NEW.id <> OLD.id THEN
        RAISE EXCEPTION 'loyalty accounts are never deleted or renumbered (transfers name them)'
          USING ERRCODE = 'restrict_violation';
      END IF;
      RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER loyalty_account_keep BEFORE UPDATE OF id OR DELETE ON loyalty_account
      FOR EACH ROW EXECUTE FUNCTION loyalty_account_keep()
    """,
    # The member's available account, locked: the one lock every redemption of the member
    # queues on. NULL when the member has no accounts (so no points).
    """
    CREATE FUNCTION redemption_lock_available(p_member bigint) RETURNS bigint
    LANGUAGE plpgsql AS $$
    DECLARE
      v_id bigint;
    BEGIN
      SELECT id INTO v_id FROM loyalty_account
       WHERE kind = 'member_available' AND coalesce(member_id, 0) = p_member
         AND coalesce(line, '') = ''
       FOR UPDATE;
      RETURN v_id;
    END $$
    """,
    """
    CREATE OR REPLACE FUNCTION redemption_lock_hold(p_hold bigint) RETURNS redemption_hold
    LANGUAGE plpgsql AS $$
    DECLARE
      v_hold redemption_hold;
    BEGIN
      PERFORM redemption_lock_available(member_id) FROM redemption_hold WHERE id = p_hold;
      IF NOT FOUND THEN
        RETURN v_hold;
      END IF;
      SELECT * INTO v_hold FROM redemption_hold WHERE id = p_hold FOR UPDATE;
      RETURN v_hold;
    END $$
    """,
    """
    CREATE OR REPLACE FUNCTION redemption_hold_points(
        p_member bigint, p_code_hash text, p_actor text, p_actor_role text, p_line text,
        p_points bigint, p_order_ref text, p_rate numeric, p_reason text, p_at timestamptz,
        p_expires_at timestamptz, p_view jsonb)
    RETURNS jsonb LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
    DECLARE
      v_member bigint := p_member;
      v_code redemption_code;
      v_available bigint;
      v_have bigint;
      v_lots bigint[];  -- the lots the hold takes, in burn order, and how much of each
      v_issuers text[];
      v_takes bigint[];
      v_taken jsonb;  -- the same, as the view's lots
      v_hold bigint;
    BEGIN
      IF p_code_hash IS NOT NULL THEN
        -- Locked, so only one of two concurrent uses of a code wins.
        SELECT * INTO v_code FROM redemption_code WHERE code_hash = p_code_hash FOR UPDATE;
        IF NOT FOUND THEN
          RETURN redemption_error('INVALID_REDEMPTION_CODE', '{"reason": "is not known"}');
        ELSIF v_code.used_at IS NOT NULL THEN
          RETURN redemption_error('INVALID_REDEMPTION_CODE', '{"reason": "was already used"}');
        ELSIF v_code.expires_at <= p_at THEN
          RETURN redemption_error('INVALID_REDEMPTION_CODE', '{"reason": "has expired"}');
        ELSIF v_member IS NOT NULL AND v_member <> v_code.member_id THEN
          RETURN redemption_error('INVALID_REDEMPTION_CODE',
                                  '{"reason": "belongs to another member"}');
        END IF;
        v_member := v_code.member_id;
      END IF;
      v_available := redemption_lock_available(v_member);
      IF v_available IS NULL THEN
        RETURN redemption_error('INSUFFICIENT_POINTS',
                                jsonb_build_object('requested', p_points, 'available', 0));
      END IF;
      -- Usable lots (available, points left, not expired at p_at), burned FIFO by expiry.
      WITH usable AS (
        SELECT id, issuer_line, remaining,
               sum(remaining) OVER (ORDER BY expires_at IS NULL, coalesce(expires_at, earned_at),
                                             earned_at, id) - remaining AS before
          FROM loyalty_lot
         WHERE member_id = v_member AND state = 'available' AND remaining > 0
           AND (expires_at IS NULL OR p_at < expires_at))
      SELECT coalesce(sum(remaining), 0),
             array_agg(id ORDER BY before) FILTER (WHERE before < p_points),
             array_agg(issuer_line ORDER BY before) FILTER (WHERE before < p_points),
             array_agg(least(remaining, p_points - before) ORDER BY before)
               FILTER (WHERE before < p_points),
             jsonb_agg(jsonb_build_object('lot_id', id, 'issuer_line', issuer_line,
                                          'points', least(remaining, p_points - before),
                                          'captured', 0, 'refunded', 0) ORDER BY before)
               FILTER (WHERE before < p_points)
        INTO v_have, v_lots, v_issuers, v_takes, v_taken FROM usable;
      IF v_have < p_points THEN
        RETURN redemption_error('INSUFFICIENT_POINTS',
                                jsonb_build_object('requested', p_points, 'available', v_have));
      END IF;
      -- Writers of a member's lots hold its available account's lock (taken above), so the
      -- lots need no lock of their own first. One UPDATE per lot: ``id = $1`` keeps a generic
      -- plan, where ``id = ANY(array)`` was planned anew on every call.
      FOR i IN 1 .. cardinality(v_lots) LOOP
        UPDATE loyalty_lot SET remaining = remaining - v_takes[i] WHERE id = v_lots[i];
      END LOOP;
      -- The hold, its lots and its posting in one statement.
      WITH h AS (
        INSERT INTO redemption_hold (member_id, line, points, order_ref, state, fen_per_point,
                                     actor, actor_role, reason, created_at, expires_at)
        VALUES (v_member, p_line, p_points, p_order_ref, 'pending', p_rate, p_actor,
                p_actor_role, p_reason, p_at, p_expires_at)
        RETURNING id),
      l AS (
        INSERT INTO redemption_hold_lot (hold_id, seq, lot_id, issuer_line, points)
        SELECT h.id, v.seq - 1, v.lot, v.issuer, v.points
          FROM h, unnest(v_lots, v_issuers, v_takes) WITH ORDINALITY
            AS v(lot, issuer, points, seq)),
      t AS (
        INSERT INTO loyalty_transfer (debit_account, credit_account, amount, code,
                                      idempotency_key, agent, reason, effective_at)
        SELECT v_available,
               coalesce((SELECT id FROM loyalty_account
                          WHERE kind = 'redemption_hold' AND coalesce(member_id, 0) = 0
                            AND coalesce(line, '') = p_line),
                        redemption_line_account('redemption_hold', p_line)),
               p_points, 'hold', 'redeem:' || h.id || ':hold/available',
               CASE WHEN p_reason IS NOT NULL THEN p_actor END, p_reason, p_at
          FROM h)
      SELECT id INTO v_hold FROM h;
      IF p_code_hash IS NOT NULL THEN
        UPDATE redemption_code SET used_at = p_at, used_by = p_actor WHERE code_hash = p_code_hash;
      END IF;
      UPDATE loyalty_account SET balance = balance - p_points WHERE id = v_available;
      RETURN jsonb_build_object('ok', coalesce(p_view, '{}') || jsonb_build_object(
        'id', v_hold, 'member_id', v_member, 'available', v_have - p_points, 'lots', v_taken));
    END $$
    """,
    # The key claimed and its outcome stored inline (redemption_claim_key/finish_key's SQL).
    """
    CREATE OR REPLACE FUNCTION redemption_place_hold(
        p_scope text, p_key text, p_request_hash text, p_request jsonb, p_error jsonb,
        p_member bigint, p_code_hash text, p_actor text, p_actor_role text, p_line text,
        p_points bigint, p_order_ref text, p_rate numeric, p_reason text, p_at timestamptz,
        p_expires_at timestamptz, p_view jsonb)
    RETURNS jsonb LANGUAGE plpgsql AS $$
    DECLARE
      v_outcome jsonb;
    BEGIN
      IF p_key IS NOT NULL THEN
        INSERT INTO idempotency_key (scope, key, operation, request_hash, request)
        VALUES (p_scope, p_key, 'redeem_points', p_request_hash, p_request)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
          RETURN jsonb_build_object('replay', redemption_claim_key(
            p_scope, p_key, 'redeem_points', p_request_hash, p_request));
        END IF;
      END IF;
      v_outcome := coalesce(p_error, redemption_hold_points(
        p_member, p_code_hash, p_actor, p_actor_role, p_line, p_points, p_order_ref, p_rate,
        p_reason, p_at, p_expires_at, p_view));
      IF p_key IS NOT NULL THEN
        UPDATE idempotency_key SET response = v_outcome WHERE scope = p_scope AND key = p_key;
      END IF;
      RETURN v_outcome;
    END $$
    """,
    # A whole capture of p_hold, which the caller has just moved from pending to captured (the
    # UPDATE that did it holds the row lock): its lots captured in full, the postings, the
    # settlement entries, and the view. Postings and settlement as redemption_capture_hold.
    # Generic plans only: with the arrays' values in hand the planner kept choosing custom
    # plans for the per-issuer statement, i.e. planning it on every call (a tenth of the
    # database's time per redemption, measured with perf); every statement here is a key
    # look-up whatever the values.
    """
    CREATE FUNCTION redemption_capture_all(
        p_hold redemption_hold, p_at timestamptz, p_at_iso text, p_period date,
        p_issuers text[], p_prices numeric[], p_group_line text)
    RETURNS jsonb LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
    DECLARE
      v_event text := 'redeem:' || p_hold.id || ':capture';
      v_lots jsonb;
      v_lot_issuers text[];
      v_lot_points bigint[];
      v_available bigint;
      v_settle_issuers text[];
      v_settle_points bigint[];
      v_settle_fen bigint[];
      v_settle_prices numeric[];
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
      -- The postings in one statement (line accounts found by the identity index, created on
      -- first use as ever): the hold's points spent at its line, and per issuing line its
      -- points used up; then what each other issuing line owes the redeeming line, at its
      -- price, for the settlement entries below.
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
         ORDER BY g.issuer COLLATE "C")
      SELECT coalesce(array_agg(g.issuer ORDER BY g.issuer COLLATE "C"), '{}'),
             coalesce(array_agg(g.points ORDER BY g.issuer COLLATE "C"), '{}'),
             coalesce(array_agg(round(g.points * pr.price)::bigint
                                ORDER BY g.issuer COLLATE "C"), '{}'),
             coalesce(array_agg(pr.price ORDER BY g.issuer COLLATE "C"), '{}')
        INTO v_settle_issuers, v_settle_points, v_settle_fen, v_settle_prices
        FROM g CROSS JOIN LATERAL (
          SELECT CASE WHEN g.issuer = p_group_line THEN p_hold.fen_per_point
                      ELSE coalesce(p_prices[array_position(p_issuers, g.issuer)], 0) END
                   AS price) pr
       WHERE g.issuer <> p_hold.line;
      IF cardinality(v_settle_issuers) > 0 THEN
        PERFORM settlement_record(p_hold.id, p_hold.line, v_event, p_at, p_period,
                                  v_settle_issuers, v_settle_points, v_settle_fen,
                                  v_settle_prices);
      END IF;
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
    END $$
    """,
    # hub.loyalty.redemption_resolve.capture: the whole-capture fast path first (see the module
    # doc), else redemption_capture_hold as in 0008.
    """
    CREATE OR REPLACE FUNCTION redemption_capture(
        p_scope text, p_key text, p_request_hash text, p_request jsonb, p_hold bigint,
        p_points bigint, p_scope_member bigint, p_scope_line text, p_at timestamptz,
        p_at_iso text, p_period date, p_issuers text[], p_prices numeric[], p_group_line text)
    RETURNS jsonb LANGUAGE plpgsql AS $$
    DECLARE
      v_hold redemption_hold;
      v_outcome jsonb;
    BEGIN
      IF p_key IS NOT NULL THEN
        INSERT INTO idempotency_key (scope, key, operation, request_hash, request)
        VALUES (p_scope, p_key, 'capture', p_request_hash, p_request)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
          RETURN jsonb_build_object('replay', redemption_claim_key(
            p_scope, p_key, 'capture', p_request_hash, p_request));
        END IF;
      END IF;
      IF p_points IS NULL THEN
        -- The conditions as one CASE: the primary key is then the only index the planner can
        -- use (a generic plan otherwise ranged over redemption_hold_due's pending holds).
        UPDATE redemption_hold SET state = 'captured', captured_points = points,
                                   resolved_at = p_at
         WHERE id = p_hold
           AND CASE WHEN state = 'pending' AND expires_at > p_at
                     AND member_id = coalesce(p_scope_member, member_id)
                     AND line = coalesce(p_scope_line, line) THEN true ELSE false END
        RETURNING * INTO v_hold;
      END IF;
      IF v_hold.id IS NOT NULL THEN
        v_outcome := redemption_capture_all(v_hold, p_at, p_at_iso, p_period, p_issuers,
                                            p_prices, p_group_line);
      ELSE
        v_outcome := redemption_capture_hold(p_hold, p_points, p_scope_member, p_scope_line,
                                             p_at, p_at_iso, p_period, p_issuers, p_prices,
                                             p_group_line);
      END IF;
      IF p_key IS NOT NULL THEN
        UPDATE idempotency_key SET response = v_outcome WHERE scope = p_scope AND key = p_key;
      END IF;
      RETURN v_outcome;
    END $$
    """,
]

# 0008's definitions of what is replaced above, restored by downgrade.
_REPLACED = (
    "redemption_lock_hold",
    "redemption_hold_points",
    "redemption_place_hold",
    "redemption_capture(",
)


def _functions_0008() -> list[str]:
    module = earlier_migration("0008_redemption_functions")
    return [
        f.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
        for f in module.FUNCTIONS
        if any(f"CREATE FUNCTION {name}" in f for name in _REPLACED)
    ]


def upgrade() -> None:
    # Straight to the driver: op.execute would read ``:capture`` in the bodies as a parameter.
    bind = op.get_bind()
    for statement in STATEMENTS:
        bind.exec_driver_sql(statement)


def downgrade() -> None:
    bind = op.get_bind()
    bind.exec_driver_sql(
        "DROP FUNCTION redemption_capture_all(redemption_hold, timestamptz, "
        "text, date, text[], numeric[], text)"
    )
    for statement in _functions_0008():
        bind.exec_driver_sql(statement)
    bind.exec_driver_sql("DROP FUNCTION redemption_lock_available(bigint)")
    bind.exec_driver_sql("DROP TRIGGER loyalty_account_keep ON loyalty_account")
    bind.exec_driver_sql("DROP FUNCTION loyalty_account_keep()")
    bind.exec_driver_sql(
        "ALTER TABLE loyalty_transfer ADD CONSTRAINT loyalty_transfer_debit_account_fkey "
        "FOREIGN KEY (debit_account) REFERENCES loyalty_account (id)"
    )
    bind.exec_driver_sql(
        "ALTER TABLE loyalty_transfer ADD CONSTRAINT loyalty_transfer_credit_account_fkey "
        "FOREIGN KEY (credit_account) REFERENCES loyalty_account (id)"
    )
    bind.exec_driver_sql("CREATE INDEX settlement_entry_event ON settlement_entry (event)")
    bind.exec_driver_sql("CREATE INDEX redemption_hold_lot_lot ON redemption_hold_lot (lot_id)")
    bind.exec_driver_sql("CREATE INDEX redemption_hold_order ON redemption_hold (line, order_ref)")
