"""Loyalty: the program (configuration) and the pure rules the points ledger calls.

- ``program``   load and validate the TOML program (``default_program``, ``HUB_PROGRAM``)
- ``model``     the program's frozen objects (lines, earn rules, tiers, benefits, policies)
- ``earning``   points and growth for an activity; pro-rata refunds
- ``expiry``    expiry policies (end of next year, N days, end of month)
- ``tiers``     upgrade / keep / downgrade decisions and evaluation periods
- ``benefits``  entitlement and quotas per period
- ``lots``      FIFO-by-expiry allocation of a burn over lots
- ``errors``    the ``LoyaltyError`` subtree of ``HubError``

Everything here is pure (no database, no clock): callers pass the facts and the time.
"""
