"""Redemption's writes as PL/pgSQL functions: one round trip per hold, capture or cancel.

Measured with ``bench/redemption.py``, a hold plus its capture took ~37 round trips from Python
(locks, reads, COPY, savepoints, the idempotency key) against 3 for a raw single-row UPDATE
transaction, and round trips were where the time went. Each function below does the whole
service inside the caller's transaction and returns one jsonb outcome:

    {"ok": <Redemption.to_json()>}       done
    {"error": <code>, "args": {...}}     a typed error (``redemption_keys.error_payload`` shape)
    {"replay": <idempotency_key row>}    the key was used before: Python replays or names the
                                         field that differs (``redemption_keys``)

Rules the Python services followed and these keep:
- Idempotency: the key row is claimed first (``INSERT … ON CONFLICT DO NOTHING`` waits for a
  concurrent call with the same key, which then replays), and the outcome, typed errors
  included, is stored under it in the same transaction.
- No savepoints: every typed error is decided before the first write, so returning it leaves
  nothing to undo. Expiry found at capture/cancel is the one error that keeps its writes (the
  points come back), as before.
- Lock order (``redemption_store``): the redemption code, then the member's accounts ascending,
  then the hold row, then lots ascending. Writers of a member's lots hold the member's account
  locks, so a hold locks only the lots it takes.
- Postings: append-only transfers keyed ``redeem:<hold>:<event>/<leg>``; member balances move in
  the same function under their row locks, and ``CHECK (balance >= 0 OR allow_negative)`` stays
  the backstop. Keys are unique per hold and event and written under the hold's lock, so a
  duplicate would be a bug: it fails on the unique index rather than being skipped.
- Sorting that decides posting order uses ``COLLATE "C"``: Python's ``sorted`` on str.

The FIFO burn order mirrors ``hub.loyalty.lots`` (expiry, never-expiring last, then earned,
then id); the settlement rounding mirrors ``hub.loyalty.settlement`` (half up, per issuer).
``tests/redemption`` exercises both through these functions.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

FUNCTIONS = [
    # Python's datetime.isoformat() of the value asyncpg returns (UTC), so a view built here
    # decodes to the same instant and reads the same as one built by Redemption.to_json().
    """
    CREATE FUNCTION redemption_iso(t timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
      SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN date_part('microseconds', t)::bigint % 1000000 <> 0
                THEN to_char(t AT TIME ZONE 'UTC', '.US') ELSE '' END
        || '+00:00'
    $$
    """,
    """
    CREATE FUNCTION redemption_error(p_code text, p_args jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE AS $$ SELECT jsonb_build_object('error', p_code, 'args', p_args) $$
    """,
    # A line account by (kind, line), created on first use (ledger.line_accounts). The lookup
    # matches the expressions of the unique index loyalty_account_identity.
    """
    CREATE FUNCTION redemption_line_account(p_kind text, p_line text) RETURNS bigint
    LANGUAGE plpgsql AS $$
    DECLARE
      v_id bigint;
    BEGIN
      SELECT id INTO v_id FROM loyalty_account
       WHERE kind = p_kind AND coalesce(member_id, 0) = 0 AND coalesce(line, '') = p_line;
      IF v_id IS NULL THEN
        INSERT INTO loyalty_account (kind, line, allow_negative) VALUES (p_kind, p_line, true)
          ON CONFLICT (kind, coalesce(member_id, 0), coalesce(line, '')) DO NOTHING;
        SELECT id INTO v_id FROM loyalty_account
         WHERE kind = p_kind AND coalesce(member_id, 0) = 0 AND coalesce(line, '') = p_line;
      END IF;
      RETURN v_id;
    END $$
    """,
    # One transfer row. Member accounts keep a balance column (line balances are computed from
    # postings, migration 0004): the caller moves it, under the row lock it holds, in the same
    # transaction.
    """
    CREATE FUNCTION redemption_post(p_debit bigint, p_credit bigint, p_amount bigint,
                                    p_code text, p_key text, p_at timestamptz,
                                    p_agent text DEFAULT NULL, p_reason text DEFAULT NULL)
    RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO loyalty_transfer (debit_account, credit_account, amount, code,
                                    idempotency_key, agent, reason, effective_at)
      VALUES (p_debit, p_credit, p_amount, p_code, p_key, p_agent, p_reason, p_at);
    END $$
    """,
    # NULL when the key is new (now claimed by this transaction) or absent; otherwise the first
    # call's row. A concurrent first call holds the row uncommitted: the insert waits for it,
    # and the SELECT (a new statement, so a new snapshot) then sees what it stored.
    """
    CREATE FUNCTION redemption_claim_key(p_scope text, p_key text, p_operation text,
                                         p_hash text, p_request jsonb)
    RETURNS jsonb LANGUAGE plpgsql AS $$
    BEGIN
      IF p_key IS NULL THEN
        RETURN NULL;
      END IF;
      INSERT INTO idempotency_key (scope, key, operation, request_hash, request)
      VALUES (p_scope, p_key, p_operation, p_hash, p_request) ON CONFLICT DO NOTHING;
      IF FOUND THEN
        RETURN NULL;
      END IF;
      RETURN (SELECT jsonb_build_object('operation', operation, 'request_hash', request_hash,
                                        'request', request, 'response', response)
                FROM idempotency_key WHERE scope = p_scope AND key = p_key);
    END $$
    """,
    """
    CREATE FUNCTION redemption_finish_key(p_scope text, p_key text, p_outcome jsonb)
    RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
      IF p_key IS NOT NULL THEN
        UPDATE idempotency_key SET response = p_outcome WHERE scope = p_scope AND key = p_key;
      END IF;
    END $$
    """,
    # hub.loyalty.settlement: entries land in the first month from p_period that is not
    # closed; the shared advisory lock keeps close_period (exclusive) from racing an insert.
    """
    CREATE FUNCTION settlement_lock_key() RETURNS int LANGUAGE sql IMMUTABLE
    AS $$ SELECT hashtext('hub.loyalty.settlement.period') $$
    """,
    """
    CREATE FUNCTION settlement_record(p_hold bigint, p_line text, p_event text,
                                      p_at timestamptz, p_period date, p_issuers text[],
                                      p_points bigint[], p_fen bigint[], p_prices numeric[])
    RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
      v_period text;
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM unnest(p_issuers, p_points) AS v(issuer, points)
                      WHERE v.issuer <> p_line AND v.points <> 0) THEN
        RETURN;  -- points spent where they were issued owe nobody
      END IF;
      PERFORM pg_advisory_xact_lock_shared(settlement_lock_key());
      v_period := to_char(p_period, 'YYYY-MM');
      IF EXISTS (SELECT 1 FROM settlement_period WHERE period = v_period AND state = 'closed') THEN
        SELECT min(to_char(m, 'YYYY-MM')) INTO v_period
          FROM generate_series(p_period, p_period + interval '120 months', interval '1 month') m
         WHERE to_char(m, 'YYYY-MM') NOT IN
           (SELECT period FROM settlement_period WHERE state = 'closed');
      END IF;
      INSERT INTO settlement_entry (period, issuer_line, redeeming_line, points, amount_fen,
        fen_per_point, hold_id, kind, event, key, effective_at)
      SELECT v_period, v.issuer, p_line, v.points, v.fen, v.price, p_hold,
             CASE WHEN v.points > 0 THEN 'capture' ELSE 'refund' END,
             p_event, p_event || '/' || v.issuer, p_at
        FROM unnest(p_issuers, p_points, p_fen, p_prices) AS v(issuer, points, fen, price)
       WHERE v.issuer <> p_line AND v.points <> 0;
    END $$
    """,
    # Give (lot, issuer, points) pieces back to their lots from account p_source; returns the
    # points p_member (the hold's member, accounts locked by the caller) got back. A lot that
    # expired meanwhile, or is gone, sends its share to the issuer's expiry account; a lot that
    # an unmerge moved to another member goes to that member, whose accounts are created if
    # need be and locked here, after the lots (rare; a deadlock there is retried by
    # run_redemption).
    """
    CREATE FUNCTION redemption_give_back(p_member bigint, p_source bigint, p_event text,
                                         p_code text, p_at timestamptz, p_lots bigint[],
                                         p_issuers text[], p_points bigint[])
    RETURNS bigint LANGUAGE plpgsql AS $$
    DECLARE
      v_back_lots bigint[];
      v_back_points bigint[];
      v_owners bigint[];
      v_lost_issuers text[];
      v_lost_points bigint[];
      v_strays bigint[];
      r record;
    BEGIN
      PERFORM 1 FROM loyalty_lot WHERE id = ANY (p_lots) ORDER BY id FOR UPDATE;
      -- (l.id = ANY(p_lots) in the join keeps the look-up on the primary key.)
      SELECT coalesce(array_agg(p.lot) FILTER (WHERE p.back), '{}'),
             coalesce(array_agg(p.points) FILTER (WHERE p.back), '{}'),
             coalesce(array_agg(p.owner) FILTER (WHERE p.back), '{}'),
             coalesce(array_agg(p.issuer) FILTER (WHERE NOT p.back), '{}'),
             coalesce(array_agg(p.points) FILTER (WHERE NOT p.back), '{}')
        INTO v_back_lots, v_back_points, v_owners, v_lost_issuers, v_lost_points
        FROM (SELECT v.lot, v.issuer, v.points, l.member_id AS owner,
                     l.id IS NOT NULL AND (l.expires_at IS NULL OR p_at < l.expires_at) AS back
                FROM unnest(p_lots, p_issuers, p_points) AS v(lot, issuer, points)
                LEFT JOIN loyalty_lot l ON l.id = v.lot AND l.id = ANY (p_lots)
               WHERE v.points > 0) p;
      SELECT coalesce(array_agg(DISTINCT o), '{}') INTO v_strays
        FROM unnest(v_owners) AS o WHERE o <> p_member;
      IF cardinality(v_strays) > 0 THEN
        INSERT INTO loyalty_account (kind, member_id, balance, allow_negative)
        SELECT k, m, 0, k = 'member_debt'
          FROM unnest(v_strays) AS m
         CROSS JOIN unnest(ARRAY['member_available', 'member_debt', 'member_pending']) AS k
         ORDER BY m, k
            ON CONFLICT (kind, coalesce(member_id, 0), coalesce(line, '')) DO NOTHING;
        PERFORM 1 FROM loyalty_account WHERE member_id = ANY (v_strays)
          AND balance IS NOT NULL ORDER BY id FOR UPDATE;
      END IF;
      FOR i IN 1 .. cardinality(v_back_lots) LOOP
        UPDATE loyalty_lot SET remaining = remaining + v_back_points[i] WHERE id = v_back_lots[i];
      END LOOP;
      FOR r IN SELECT o.member, sum(o.points)::bigint AS points, a.id AS account
                 FROM unnest(v_owners, v_back_points) AS o(member, points)
                 JOIN loyalty_account a ON a.member_id = o.member AND a.kind = 'member_available'
                GROUP BY o.member, a.id ORDER BY o.member LOOP
        PERFORM redemption_post(p_source, r.account, r.points, p_code,
                                p_event || '/member:' || r.member, p_at);
        UPDATE loyalty_account SET balance = balance + r.points WHERE id = r.account;
      END LOOP;
      FOR r IN SELECT v.issuer, sum(v.points)::bigint AS points
                 FROM unnest(v_lost_issuers, v_lost_points) AS v(issuer, points)
                GROUP BY v.issuer ORDER BY v.issuer COLLATE "C" LOOP
        PERFORM redemption_post(p_source, redemption_line_account('expiry', r.issuer), r.points,
                                'hold_breakage', p_event || '/expired:' || r.issuer, p_at);
      END LOOP;
      RETURN coalesce((SELECT sum(o.points)::bigint FROM unnest(v_owners, v_back_points) AS o(member, points)
                        WHERE o.member = p_member), 0);
    END $$
    """,
    # Lock order: the member's accounts (ascending id, found through the hold), then the hold.
    # A row of NULLs when there is no such hold (or its member has no accounts).
    """
    CREATE FUNCTION redemption_lock_hold(p_hold bigint) RETURNS redemption_hold
    LANGUAGE plpgsql AS $$
    DECLARE
      v_hold redemption_hold;
    BEGIN
      PERFORM 1 FROM loyalty_account a JOIN redemption_hold h ON h.member_id = a.member_id
       WHERE h.id = p_hold ORDER BY a.id FOR UPDATE OF a;
      IF NOT FOUND THEN
        RETURN v_hold;
      END IF;
      SELECT * INTO v_hold FROM redemption_hold WHERE id = p_hold FOR UPDATE;
      RETURN v_hold;
    END $$
    """,
    # The typed error for a second resolve (redemption_resolve._already in Python before).
    """
    CREATE FUNCTION redemption_already(p_hold redemption_hold) RETURNS jsonb
    LANGUAGE sql IMMUTABLE AS $$
      SELECT redemption_error(CASE WHEN p_hold.state IN ('captured', 'refunded')
                                   THEN 'ALREADY_CAPTURED'
                                   WHEN p_hold.state = 'cancelled' THEN 'ALREADY_CANCELLED'
                                   ELSE 'HOLD_EXPIRED' END,
                              jsonb_build_object('hold_id', p_hold.id))
    $$
    """,
    # Redemption.to_json() of a hold just resolved at p_resolved_at (Python's isoformat of it).
    # PL/pgSQL rather than SQL: PL/pgSQL keeps the query's plan for the session, a SQL function
    # that is not inlined is planned on every call.
    """
    CREATE FUNCTION redemption_view(p_hold bigint, p_resolved_at text) RETURNS jsonb
    LANGUAGE plpgsql STABLE AS $$
    BEGIN
      RETURN (SELECT jsonb_build_object(
        'id', h.id, 'member_id', h.member_id, 'line', h.line, 'points', h.points,
        'order_ref', h.order_ref, 'state', h.state, 'captured_points', h.captured_points,
        'refunded_points', h.refunded_points,
        'amount_fen', floor(coalesce(nullif(h.captured_points, 0), h.points)
                            * h.fen_per_point)::bigint,
        'created_at', redemption_iso(h.created_at), 'expires_at', redemption_iso(h.expires_at),
        'resolved_at', p_resolved_at,
        'available', (SELECT balance FROM loyalty_account
                       WHERE member_id = h.member_id AND kind = 'member_available'),
        'lots', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                          'lot_id', l.lot_id, 'issuer_line', l.issuer_line, 'points', l.points,
                          'captured', l.captured, 'refunded', l.refunded) ORDER BY l.seq), '[]')
                   FROM redemption_hold_lot l WHERE l.hold_id = h.id),
        'replayed', false)
      FROM redemption_hold h WHERE h.id = p_hold);
    END $$
    """,
    # Void every point of a pending hold back to its lots and mark it p_state.
    """
    CREATE FUNCTION redemption_void(p_hold redemption_hold, p_state text, p_at timestamptz)
    RETURNS bigint LANGUAGE plpgsql AS $$
    DECLARE
      v_back bigint;
    BEGIN
      SELECT redemption_give_back(p_hold.member_id,
                                  redemption_line_account('redemption_hold', p_hold.line),
                                  'redeem:' || p_hold.id || ':void', 'void', p_at,
                                  array_agg(lot_id ORDER BY seq), array_agg(issuer_line ORDER BY seq),
                                  array_agg(points ORDER BY seq))
        INTO v_back FROM redemption_hold_lot WHERE hold_id = p_hold.id;
      UPDATE redemption_hold SET state = p_state, resolved_at = p_at WHERE id = p_hold.id;
      RETURN v_back;
    END $$
    """,
    # place_hold's work once the key is claimed (and Python found no error of its own).
    """
    CREATE FUNCTION redemption_hold_points(
        p_member bigint, p_code_hash text, p_actor text, p_actor_role text, p_line text,
        p_points bigint, p_order_ref text, p_rate numeric, p_reason text, p_at timestamptz,
        p_expires_at timestamptz, p_view jsonb)
    RETURNS jsonb LANGUAGE plpgsql AS $$
    DECLARE
      v_member bigint := p_member;
      v_code redemption_code;
      v_available bigint;
      v_have bigint;
      v_lots bigint[];  -- the lots the hold takes, in burn order, and how much of each
      v_issuers text[];
      v_takes bigint[];
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
      SELECT max(a.id) FILTER (WHERE a.kind = 'member_available') INTO v_available
        FROM (SELECT id, kind FROM loyalty_account WHERE member_id = v_member
               ORDER BY id FOR UPDATE) a;
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
               FILTER (WHERE before < p_points)
        INTO v_have, v_lots, v_issuers, v_takes FROM usable;
      IF v_have < p_points THEN
        RETURN redemption_error('INSUFFICIENT_POINTS',
                                jsonb_build_object('requested', p_points, 'available', v_have));
      END IF;
      -- id = ANY(array) rather than a join with unnest(): an index scan whatever the planner
      -- guesses of the array's length.
      PERFORM 1 FROM loyalty_lot WHERE id = ANY (v_lots) ORDER BY id FOR UPDATE;
      FOR i IN 1 .. cardinality(v_lots) LOOP
        UPDATE loyalty_lot SET remaining = remaining - v_takes[i] WHERE id = v_lots[i];
      END LOOP;
      INSERT INTO redemption_hold (member_id, line, points, order_ref, state, fen_per_point,
                                   actor, actor_role, reason, created_at, expires_at)
      VALUES (v_member, p_line, p_points, p_order_ref, 'pending', p_rate, p_actor,
              p_actor_role, p_reason, p_at, p_expires_at)
      RETURNING id INTO v_hold;
      INSERT INTO redemption_hold_lot (hold_id, seq, lot_id, issuer_line, points)
      SELECT v_hold, v.seq - 1, v.lot, v.issuer, v.points
        FROM unnest(v_lots, v_issuers, v_takes) WITH ORDINALITY AS v(lot, issuer, points, seq);
      IF p_code_hash IS NOT NULL THEN
        UPDATE redemption_code SET used_at = p_at, used_by = p_actor WHERE code_hash = p_code_hash;
      END IF;
      PERFORM redemption_post(v_available, redemption_line_account('redemption_hold', p_line),
                              p_points, 'hold', 'redeem:' || v_hold || ':hold/available', p_at,
                              CASE WHEN p_reason IS NOT NULL THEN p_actor END, p_reason);
      UPDATE loyalty_account SET balance = balance - p_points WHERE id = v_available;
      RETURN jsonb_build_object('ok', coalesce(p_view, '{}') || jsonb_build_object(
        'id', v_hold, 'member_id', v_member, 'available', v_have - p_points,
        'lots', (SELECT jsonb_agg(jsonb_build_object('lot_id', v.lot, 'issuer_line', v.issuer,
                                                     'points', v.points, 'captured', 0,
                                                     'refunded', 0) ORDER BY v.seq)
                   FROM unnest(v_lots, v_issuers, v_takes) WITH ORDINALITY
                     AS v(lot, issuer, points, seq))));
    END $$
    """,
    # hub.loyalty.redemption.place_hold. p_error is an outcome Python decided before asking the
    # database (a malformed code, no member named): it is remembered under the key all the same.
    # p_view is Redemption.to_json() of the result with the fields only the database knows
    # (id, member_id, available, lots) still to fill: what the key stores (NULL without a key,
    # when only those fields are returned).
    """
    CREATE FUNCTION redemption_place_hold(
        p_scope text, p_key text, p_request_hash text, p_request jsonb, p_error jsonb,
        p_member bigint, p_code_hash text, p_actor text, p_actor_role text, p_line text,
        p_points bigint, p_order_ref text, p_rate numeric, p_reason text, p_at timestamptz,
        p_expires_at timestamptz, p_view jsonb)
    RETURNS jsonb LANGUAGE plpgsql AS $$
    DECLARE
      v_first jsonb;
      v_outcome jsonb;
    BEGIN
      v_first := redemption_claim_key(p_scope, p_key, 'redeem_points', p_request_hash,
                                      p_request);
      IF v_first IS NOT NULL THEN
        RETURN jsonb_build_object('replay', v_first);
      END IF;
      v_outcome := coalesce(p_error, redemption_hold_points(
        p_member, p_code_hash, p_actor, p_actor_role, p_line, p_points, p_order_ref, p_rate,
        p_reason, p_at, p_expires_at, p_view));
      PERFORM redemption_finish_key(p_scope, p_key, v_outcome);
      RETURN v_outcome;
    END $$
    """,
    # capture's work: all of the hold, or p_points of it (the rest goes back to its lots).
    # Prices per issuing line come from the program (p_issuers/p_prices); points an agent added
    # (issuer p_group_line) are paid at the redeeming line's own rate.
    """
    CREATE FUNCTION redemption_capture_hold(
        p_hold bigint, p_points bigint, p_scope_member bigint, p_scope_line text,
        p_at timestamptz, p_at_iso text, p_period date, p_issuers text[], p_prices numeric[],
        p_group_line text)
    RETURNS jsonb LANGUAGE plpgsql AS $$
    DECLARE
      v_hold redemption_hold;
      v_n bigint;
      v_held bigint;
      v_event text := 'redeem:' || p_hold || ':capture';
      r record;
    BEGIN
      v_hold := redemption_lock_hold(p_hold);
      IF v_hold.id IS NULL OR v_hold.member_id <> coalesce(p_scope_member, v_hold.member_id)
         OR v_hold.line <> coalesce(p_scope_line, v_hold.line) THEN
        RETURN redemption_error('HOLD_NOT_FOUND', jsonb_build_object('hold_id', p_hold));
      ELSIF v_hold.state <> 'pending' THEN
        RETURN redemption_already(v_hold);
      ELSIF v_hold.expires_at <= p_at THEN
        PERFORM redemption_void(v_hold, 'expired', p_at);  -- kept: the points come back
        RETURN redemption_error('HOLD_EXPIRED', jsonb_build_object('hold_id', p_hold));
      END IF;
      v_n := coalesce(p_points, v_hold.points);
      IF NOT (0 < v_n AND v_n <= v_hold.points) THEN
        RETURN redemption_error('INVALID_REDEMPTION', jsonb_build_object(
          'field', 'points', 'reason', 'must be from 1 to the ' || v_hold.points || ' held'));
      END IF;
      -- FIFO: the lots that expire first are the ones spent.
      UPDATE redemption_hold_lot l SET captured = least(l.points, greatest(v_n - c.before, 0))
        FROM (SELECT seq, sum(points) OVER (ORDER BY seq) - points AS before
                FROM redemption_hold_lot WHERE hold_id = p_hold) c
       WHERE l.hold_id = p_hold AND l.seq = c.seq;
      v_held := redemption_line_account('redemption_hold', v_hold.line);
      IF v_n < v_hold.points THEN
        PERFORM redemption_give_back(v_hold.member_id, v_held, 'redeem:' || p_hold || ':void',
                                     'void', p_at, array_agg(lot_id ORDER BY seq),
                                     array_agg(issuer_line ORDER BY seq),
                                     array_agg(points - captured ORDER BY seq))
           FROM redemption_hold_lot WHERE hold_id = p_hold;
      END IF;
      PERFORM redemption_post(v_held, redemption_line_account('redemption_clearing', v_hold.line),
                              v_n, 'capture', v_event || '/spent', p_at);
      FOR r IN SELECT issuer_line AS issuer, sum(captured)::bigint AS points FROM redemption_hold_lot
                WHERE hold_id = p_hold AND captured > 0
                GROUP BY issuer_line ORDER BY issuer_line COLLATE "C" LOOP
        PERFORM redemption_post(redemption_line_account('redemption_clearing', r.issuer),
                                redemption_line_account('issuance', r.issuer), r.points,
                                'redeem', v_event || '/issuer:' || r.issuer, p_at);
      END LOOP;
      UPDATE redemption_hold SET state = 'captured', captured_points = v_n, resolved_at = p_at
       WHERE id = p_hold;
      PERFORM settlement_record(p_hold, v_hold.line, v_event, p_at, p_period,
                                array_agg(d.issuer), array_agg(d.points),
                                array_agg(round(d.points * d.price)::bigint), array_agg(d.price))
         FROM (SELECT b.issuer, b.points,
                      CASE WHEN b.issuer = p_group_line THEN v_hold.fen_per_point
                           ELSE coalesce(pr.price, 0) END AS price
                 FROM (SELECT issuer_line AS issuer, sum(captured)::bigint AS points
                         FROM redemption_hold_lot WHERE hold_id = p_hold AND captured > 0
                        GROUP BY issuer_line) b
                 LEFT JOIN unnest(p_issuers, p_prices) AS pr(issuer, price)
                   ON pr.issuer = b.issuer) d;
      RETURN jsonb_build_object('ok', redemption_view(p_hold, p_at_iso));
    END $$
    """,
    # hub.loyalty.redemption_resolve.capture.
    """
    CREATE FUNCTION redemption_capture(
        p_scope text, p_key text, p_request_hash text, p_request jsonb, p_hold bigint,
        p_points bigint, p_scope_member bigint, p_scope_line text, p_at timestamptz,
        p_at_iso text, p_period date, p_issuers text[], p_prices numeric[], p_group_line text)
    RETURNS jsonb LANGUAGE plpgsql AS $$
    DECLARE
      v_first jsonb;
      v_outcome jsonb;
    BEGIN
      v_first := redemption_claim_key(p_scope, p_key, 'capture', p_request_hash, p_request);
      IF v_first IS NOT NULL THEN
        RETURN jsonb_build_object('replay', v_first);
      END IF;
      v_outcome := redemption_capture_hold(p_hold, p_points, p_scope_member, p_scope_line, p_at,
                                           p_at_iso, p_period, p_issuers, p_prices,
                                           p_group_line);
      PERFORM redemption_finish_key(p_scope, p_key, v_outcome);
      RETURN v_outcome;
    END $$
    """,
    # hub.loyalty.redemption_resolve.cancel: void a pending hold (past its TTL: expire it).
    """
    CREATE FUNCTION redemption_cancel(
        p_scope text, p_key text, p_request_hash text, p_request jsonb, p_hold bigint,
        p_scope_member bigint, p_scope_line text, p_at timestamptz, p_at_iso text)
    RETURNS jsonb LANGUAGE plpgsql AS $$
    DECLARE
      v_first jsonb;
      v_hold redemption_hold;
      v_outcome jsonb;
    BEGIN
      v_first := redemption_claim_key(p_scope, p_key, 'cancel', p_request_hash, p_request);
      IF v_first IS NOT NULL THEN
        RETURN jsonb_build_object('replay', v_first);
      END IF;
      v_hold := redemption_lock_hold(p_hold);
      IF v_hold.id IS NULL OR v_hold.member_id <> coalesce(p_scope_member, v_hold.member_id)
         OR v_hold.line <> coalesce(p_scope_line, v_hold.line) THEN
        v_outcome := redemption_error('HOLD_NOT_FOUND', jsonb_build_object('hold_id', p_hold));
      ELSIF v_hold.state <> 'pending' THEN
        v_outcome := redemption_already(v_hold);
      ELSIF v_hold.expires_at <= p_at THEN
        PERFORM redemption_void(v_hold, 'expired', p_at);
        v_outcome := redemption_error('HOLD_EXPIRED', jsonb_build_object('hold_id', p_hold));
      ELSE
        PERFORM redemption_void(v_hold, 'cancelled', p_at);
        v_outcome := jsonb_build_object('ok', redemption_view(p_hold, p_at_iso));
      END IF;
      PERFORM redemption_finish_key(p_scope, p_key, v_outcome);
      RETURN v_outcome;
    END $$
    """,
    # hub.loyalty.redemption_resolve.expire_holds, per hold: its points, or NULL when it was no
    # longer due (a capture or cancel resolved it first).
    """
    CREATE FUNCTION redemption_expire(p_hold bigint, p_as_of timestamptz) RETURNS bigint
    LANGUAGE plpgsql AS $$
    DECLARE
      v_hold redemption_hold;
    BEGIN
      v_hold := redemption_lock_hold(p_hold);
      IF v_hold.id IS NULL OR v_hold.state <> 'pending' OR v_hold.expires_at > p_as_of THEN
        RETURN NULL;
      END IF;
      PERFORM redemption_void(v_hold, 'expired', p_as_of);
      RETURN v_hold.points;
    END $$
    """,
]

# Reverse order of creation (later functions call earlier ones).
SIGNATURES = [
    "redemption_expire(bigint, timestamptz)",
    "redemption_cancel(text, text, text, jsonb, bigint, bigint, text, timestamptz, text)",
    "redemption_capture(text, text, text, jsonb, bigint, bigint, bigint, text, timestamptz, "
    "text, date, text[], numeric[], text)",
    "redemption_capture_hold(bigint, bigint, bigint, text, timestamptz, text, date, text[], "
    "numeric[], text)",
    "redemption_place_hold(text, text, text, jsonb, jsonb, bigint, text, text, text, text, "
    "bigint, text, numeric, text, timestamptz, timestamptz, jsonb)",
    "redemption_hold_points(bigint, text, text, text, text, bigint, text, numeric, text, "
    "timestamptz, timestamptz, jsonb)",
    "redemption_void(redemption_hold, text, timestamptz)",
    "redemption_view(bigint, text)",
    "redemption_already(redemption_hold)",
    "redemption_lock_hold(bigint)",
    "redemption_give_back(bigint, bigint, text, text, timestamptz, bigint[], text[], bigint[])",
    "settlement_record(bigint, text, text, timestamptz, date, text[], bigint[], bigint[], "
    "numeric[])",
    "settlement_lock_key()",
    "redemption_finish_key(text, text, jsonb)",
    "redemption_claim_key(text, text, text, text, jsonb)",
    "redemption_post(bigint, bigint, bigint, text, text, timestamptz, text, text)",
    "redemption_line_account(text, text)",
    "redemption_error(text, jsonb)",
    "redemption_iso(timestamptz)",
]


def upgrade() -> None:
    # Straight to the driver: op.execute would read ``:void`` and ``:capture`` in the function
    # bodies as bind parameters.
    bind = op.get_bind()
    for statement in FUNCTIONS:
        bind.exec_driver_sql(statement)


def downgrade() -> None:
    for signature in SIGNATURES:
        op.execute(f"DROP FUNCTION {signature}")
