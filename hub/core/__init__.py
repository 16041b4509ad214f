"""Foundation: settings, database, privacy, errors, telemetry, clock and canonical records.

Nothing here imports any other package of ours.
"""
