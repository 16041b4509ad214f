"""Use cases that span domains: ingest, merge/unmerge, member deletion, jobs."""
