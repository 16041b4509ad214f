"""The import report: what was read, what landed, what was rejected and why (file and line)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hub.core.records import RowError

MAX_LISTED_ERRORS = 100_000  # a report lists every rejected row up to this many; counts are exact
# Row errors that say a value was dropped while the row itself landed: warnings, not rejections.
WARNING_CODES = frozenset({"BAD_FIELD", "FIELD_IGNORED"})


@dataclass
class FileCounts:
    read: int = 0
    new: int = 0
    unchanged: int = 0
    updated: int = 0
    rejected: int = 0
    warnings: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "new": self.new,
            "unchanged": self.unchanged,
            "updated": self.updated,
            "rejected": self.rejected,
            "warnings": self.warnings,
            "rejected_by_reason": dict(self.rejected_by_reason),
        }


@dataclass
class IngestReport:
    connector: str
    import_run_id: int | None = None
    files: dict[str, FileCounts] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)
    errors_truncated: int = 0
    failed: str | None = None  # the import stopped (the files before it landed)
    refused_files: dict[str, str] = field(default_factory=dict)  # file -> why it was not read
    chosen: dict[str, str] = field(default_factory=dict)  # file -> connector that read it

    def refuse(self, name: str, reason: str) -> None:
        self.refused_files[name] = reason

    def file(self, name: str) -> FileCounts:
        return self.files.setdefault(name, FileCounts())

    def reject(self, error: RowError) -> None:
        counts = self.file(error.file)
        if error.code in WARNING_CODES:
            counts.warnings += 1
            target = self.warnings
        else:
            counts.read += 1
            counts.rejected += 1
            counts.rejected_by_reason[error.code] += 1
            target = self.errors
        if len(target) < MAX_LISTED_ERRORS:
            target.append(error)
        else:
            self.errors_truncated += 1

    def total(self, name: str) -> int:
        return sum(int(getattr(c, name)) for c in self.files.values())

    def as_dict(self) -> dict[str, Any]:
        by_reason: Counter[str] = Counter()
        for counts in self.files.values():
            by_reason.update(counts.rejected_by_reason)
        return {
            "connector": self.connector,
            "import_run_id": self.import_run_id,
            "read": self.total("read"),
            "new": self.total("new"),
            "unchanged": self.total("unchanged"),
            "updated": self.total("updated"),
            "rejected": self.total("rejected"),
            "rejected_by_reason": dict(by_reason),
            "failed": self.failed,
            "refused_files": self.refused_files,
            "connectors": self.chosen,
            "files": {name: c.as_dict() for name, c in self.files.items()},
            "rejected_rows": [
                {
                    "file": e.file,
                    "line": e.line,
                    "column": e.column,
                    "code": e.code,
                    "reason": e.reason,
                    "raw": e.raw,
                }
                for e in self.errors
            ],
            "warnings": self.total("warnings"),
            "warning_rows": [
                {
                    "file": e.file,
                    "line": e.line,
                    "column": e.column,
                    "code": e.code,
                    "reason": e.reason,
                    "raw": e.raw,
                }
                for e in self.warnings
            ],
            "rejected_rows_not_listed": self.errors_truncated,
        }
