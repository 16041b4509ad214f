"""Streaming JSON input for connectors: NDJSON, one top-level array, or concatenated objects.

``json_objects(stream, filename=...)`` yields ``(line, value)`` per document, where ``line`` is
the 1-based line the document starts on, and a ``RowError`` for a document it cannot read.

- NDJSON (each line parses on its own): a malformed line is a ``RowError`` and reading goes on.
- A top-level array or pretty-printed objects: decoded one element at a time from a bounded
  buffer, so a large export is never loaded whole. A syntax error here leaves no safe place to
  resume, so it is reported as one ``RowError`` and the rest of the file is not read.
- Anything that does not start with ``{`` or ``[`` raises ``ImportFormatError`` at once.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any, BinaryIO, cast

from connectors.base import open_text, row_error
from hub.core.errors import ImportFormatError
from hub.core.records import RowError

CHUNK_CHARS = 64 * 1024
MAX_DOCUMENT_CHARS = 8 * 1024 * 1024  # one profile or receipt; larger is a broken file
_DECODER = json.JSONDecoder()
_SPACE = " \t\r\n"


def peek_head(stream: BinaryIO, size: int = 4096) -> tuple[BinaryIO, bytes]:
    """The first bytes of a stream without consuming them, and the stream to read on from."""
    if isinstance(stream, io.BufferedReader):
        buffered = stream
    else:
        buffered = io.BufferedReader(cast(io.RawIOBase, stream))
    return cast(BinaryIO, buffered), buffered.peek(size)[:size]


def first_char(head: bytes) -> str:
    """The first non-blank character of a file head (BOM ignored), for format sniffing."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return text.decode("ascii", errors="replace")


def json_objects(stream: BinaryIO, *, filename: str) -> Iterator[tuple[int, Any] | RowError]:
    text, _ = open_text(stream)
    try:
        yield from _objects(text, filename)
    finally:
        # The caller owns the stream: detach our wrappers rather than let their finalizers close it.
        if not text.closed:
            buffer = text.detach()
            if buffer is not stream and isinstance(buffer, io.BufferedReader):
                buffer.detach()


def _objects(text: io.TextIOBase, filename: str) -> Iterator[tuple[int, Any] | RowError]:
    line_no = 0
    first = ""
    for raw in text:
        line_no += 1
        if raw.strip():
            first = raw
            break
    start = first.lstrip("\ufeff" + _SPACE)[:1]
    if start not in ("{", "["):
        raise ImportFormatError(f"{filename} is not JSON: expected an object, an array or NDJSON")
    if start == "{":
        try:
            value = json.loads(first)
        except json.JSONDecodeError:
            value = None  # a pretty-printed object: fall through to the buffered reader
        else:
            yield line_no, value
            yield from _ndjson(text, line_no, filename)
            return
    yield from _documents(text, first, line_no, filename, array=start == "[")


def _ndjson(
    text: io.TextIOBase, line_no: int, filename: str
) -> Iterator[tuple[int, Any] | RowError]:
    for raw in text:
        line_no += 1
        if not raw.strip():
            continue
        if len(raw) > MAX_DOCUMENT_CHARS:
            yield row_error(filename, line_no, "line is too long to be one record", code="BAD_JSON")
            continue
        try:
            yield line_no, json.loads(raw)
        except json.JSONDecodeError as exc:
            yield row_error(
                filename, line_no, f"malformed JSON ({exc.msg})", raw=raw[:200], code="BAD_JSON"
            )


def _documents(
    text: io.TextIOBase, first: str, first_line: int, filename: str, *, array: bool
) -> Iterator[tuple[int, Any] | RowError]:
    buf = first.lstrip("\ufeff")
    pos = 0
    base_line = first_line  # line number of buf[0]
    eof = False
    if array:
        pos = buf.index("[") + 1

    def fill() -> bool:
        nonlocal buf, pos, base_line, eof
        chunk = text.read(CHUNK_CHARS)
        if not chunk:
            eof = True
            return False
        base_line += buf.count("\n", 0, pos)
        buf = buf[pos:] + chunk
        pos = 0
        return True

    while True:
        # Skip blanks and, inside an array, the commas between elements.
        while True:
            while pos < len(buf) and (buf[pos] in _SPACE or (array and buf[pos] == ",")):
                pos += 1
            if pos < len(buf) or not fill():
                break
        if pos >= len(buf):
            if array:
                yield row_error(filename, base_line, "array is not closed with ]", code="BAD_JSON")
            return
        if array and buf[pos] == "]":
            return
        start_line = base_line + buf.count("\n", 0, pos)
        while True:
            try:
                value, end = _DECODER.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                if len(buf) - pos > MAX_DOCUMENT_CHARS:
                    reason = "a document is too large to be one record"
                    yield row_error(filename, start_line, reason, code="BAD_JSON")
                    return
                if not eof and fill():
                    continue
                at = base_line + buf.count("\n", 0, exc.pos)
                yield row_error(
                    filename,
                    at,
                    f"malformed JSON ({exc.msg}); rest of file not read",
                    code="BAD_JSON",
                )
                return
            # A value that ends exactly at the buffer's end may continue in the next chunk.
            if end == len(buf) and not eof and fill():
                continue
            break
        yield start_line, value
        pos = end
