"""What every connector shares: encoding sniffing, streaming CSV with header synonyms, row errors.

A connector is a generator ``parse(stream, *, filename) -> Iterator[Parsed]`` over a binary stream.
It reads in constant memory, maps columns by header name through a synonym table (never by
position), yields ``RowError`` for a row it cannot read and carries on, and raises
``ImportFormatError`` at once when the header shows the file is not its kind.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from hub.core.errors import ImportFormatError
from hub.core.normalize import clean_cell
from hub.core.pii import mask_raw
from hub.core.records import RowError

SNIFF_BYTES = 64 * 1024
MAX_ROW_CHARS = 1 << 20  # a "row" longer than this is a broken file, not a row
csv.field_size_limit(MAX_ROW_CHARS)


def sniff_encoding(head: bytes) -> str:
    """BOM → UTF-8 → GB18030 (a superset of GBK, what Taobao's legacy exports are)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the sniff window is still UTF-8.
        if exc.start >= len(head) - 3:
            return "utf-8"
    return "gb18030"


def open_text(stream: BinaryIO) -> tuple[io.TextIOBase, str]:
    """Wrap a binary stream as text in its sniffed encoding, without reading it all."""
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[type-var]
    head = buffered.peek(SNIFF_BYTES)[:SNIFF_BYTES]
    encoding = sniff_encoding(head)
    return io.TextIOWrapper(buffered, encoding=encoding, errors="strict", newline=""), encoding


@dataclass(frozen=True)
class HeaderMap:
    """Canonical field → the column index it was found at, resolved once from the header row."""

    index: Mapping[str, int]
    header: Sequence[str]

    def get(self, row: Sequence[str], fld: str) -> str | None:
        i = self.index.get(fld)
        if i is None or i >= len(row):
            return None
        return clean_cell(row[i])

    def column(self, fld: str) -> str:
        i = self.index.get(fld)
        return self.header[i] if i is not None else fld


def resolve_header(
    header: Sequence[str],
    synonyms: Mapping[str, Sequence[str]],
    required: Sequence[str],
    *,
    connector: str,
    filename: str,
) -> HeaderMap:
    """Map header names onto canonical fields; a missing required field means wrong file."""
    cleaned = [(clean_cell(h) or "").lstrip("\ufeff").strip() for h in header]
    index: dict[str, int] = {}
    for fld, names in synonyms.items():
        for name in names:
            if name in cleaned:
                index[fld] = cleaned.index(name)
                break
    missing = [f for f in required if f not in index]
    if missing:
        expected = ", ".join(synonyms[f][0] for f in required)
        raise ImportFormatError(
            f"{filename} does not look like a {connector} file: it lacks "
            f"{', '.join(synonyms[f][0] for f in missing)} (expected headers include {expected})"
        )
    return HeaderMap(index=index, header=cleaned)


def csv_rows(stream: BinaryIO, *, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """(physical line number of the row's start, cells), streaming; line 1 is the header."""
    text, _ = open_text(stream)
    try:
        reader = csv.reader(text, delimiter=delimiter)
        line = 1
        for row in reader:
            yield line, row
            line = reader.line_num + 1
    finally:
        # The caller owns the stream: detach our wrappers instead of letting their finalizers
        # close it (and raise ResourceWarning, an error under pytest's filterwarnings).
        if not text.closed:
            buffer = text.detach()
            if buffer is not stream and isinstance(buffer, io.BufferedReader):
                buffer.detach()


def row_error(
    filename: str,
    line: int,
    reason: str,
    *,
    column: str | None = None,
    raw: Sequence[str] | str | None = None,
    code: str = "BAD_ROW",
) -> RowError:
    text = raw if isinstance(raw, str) or raw is None else ",".join(raw)
    return RowError(
        file=filename,
        line=line,
        reason=reason,
        code=code,
        column=column,
        raw=mask_raw(text) if text else None,
    )
