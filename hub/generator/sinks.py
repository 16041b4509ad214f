"""Streaming writers for the generated files, counting the data rows they write.

CSV is written by hand rather than with ``csv.writer`` because exporters do two things the csv
module would "fix": Taobao writes ``="3000…"`` bare (csv would quote and double the quotes), and
Douyin quotes a value only because of the tab inside it (csv leaves tabs unquoted).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

_NEEDS_QUOTES = frozenset(',"\r\n\t')
_BUFFER_BYTES = 1 << 20


def excel_text(value: str) -> str:
    """Taobao's guard against Excel turning 19-digit ids into floats: ``="…"``, left bare."""
    return f'="{value}"'


def tab_text(value: str) -> str:
    """Douyin's guard against the same: the id followed by a tab."""
    return value + "\t"


def csv_field(value: str) -> str:
    if _NEEDS_QUOTES.isdisjoint(value):
        return value
    if value.startswith('="') and value.endswith('"') and '"' not in value[2:-1]:
        return value
    return '"' + value.replace('"', '""') + '"'


class CsvSink:
    def __init__(self, path: Path, header: Iterable[str], *, encoding: str) -> None:
        self.path = path
        self.rows = 0
        # newline="" so "\r\n" is written as is (Windows exporters), never translated.
        self._file: TextIO = path.open(
            "w", encoding=encoding, errors="strict", newline="", buffering=_BUFFER_BYTES
        )
        self._file.write(",".join(csv_field(h) for h in header) + "\r\n")

    def write(self, row: Iterable[str]) -> None:
        self._file.write(",".join([csv_field(v) for v in row]) + "\r\n")
        self.rows += 1

    def close(self) -> None:
        self._file.close()


class NdjsonSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._file: TextIO = path.open("w", encoding="utf-8", newline="\n", buffering=_BUFFER_BYTES)

    def write(self, obj: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.rows += 1

    def close(self) -> None:
        self._file.close()


Sink = CsvSink | NdjsonSink


class SinkSet:
    """Every open output file by name; closes them all, even when generation fails halfway."""

    def __init__(self) -> None:
        self._sinks: dict[str, Sink] = {}

    def csv(self, path: Path, header: Iterable[str], *, encoding: str) -> CsvSink:
        sink = CsvSink(path, header, encoding=encoding)
        self._sinks[path.name] = sink
        return sink

    def ndjson(self, path: Path) -> NdjsonSink:
        sink = NdjsonSink(path)
        self._sinks[path.name] = sink
        return sink

    def counts(self) -> dict[str, int]:
        return {name: sink.rows for name, sink in sorted(self._sinks.items())}

    def __enter__(self) -> SinkSet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sink in self._sinks.values():
            sink.close()
