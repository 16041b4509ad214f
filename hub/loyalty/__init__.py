"""Loyalty: the program (configuration) and the pure rules the points ledger calls.

- ``program``   load and validate the TOML program (``default_program``, ``HUB_PROGRAM``)
- ``model``     the program's frozen objects (lines, earn rules, tiers, benefits, policies)
- ``earning``   points and growth for an activity; pro-rata refunds
- ``expiry``    expiry policies (end of next year, N days, end of month)
- ``tiers``     upgrade / keep / downgrade decisions and evaluation periods
- ``benefits``  entitlement and quotas per period
- ``lots``      FIFO-by-expiry allocation of a burn over lots
- ``errors``    the ``LoyaltyError`` subtree of ``HubError``

Those are pure (no database, no clock): callers pass the facts and the time. The ledger
(PostgreSQL, migration 0004) builds on them:

- ``ledger``       accounts and append-only double-entry transfers (idempotency, lock order)
- ``holdings``     lots as stored: load locked, change in memory, write back
- ``accrual``      activities → lots, pending points, growth; refunds and cancellations
- ``reversal``     what a refund takes back, from which lots, debt or write-off
- ``standing``     tier state, growth per period, upgrades, tier history
- ``attribution``  merges and unmerges: points follow the source records (identity's contract)
- ``jobs``         expire, release_pending, evaluate_tiers (idempotent per date, concurrent-safe)
- ``adjustments``  agents' manual adjustments (capped, idempotent, audited)
- ``claims``       benefit claims (quota, idempotent, audited)
- ``invariants``   named ``check_*`` functions (``hub ledger check``)
- ``views``        batched read models for the GraphQL loyalty view
- ``hooks``        ``LoyaltyHooks``: the ingest seam
"""
