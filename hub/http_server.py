"""How `hub serve` speaks HTTP/1.1: uvicorn's httptools protocol, one socket write per response.

uvicorn writes a response's status line and headers on ``http.response.start`` and its body on
``http.response.body``: two ``send`` system calls per response, and on the receiving side two
wake-ups. On loopback and in VMs a ``send`` is costly (the kernel runs the peer's receive path
inline): measured on a profile view, each was 3-4 % of the server's CPU per request.

``OneWriteHttpToolsProtocol`` hands uvicorn a transport that holds a write of a status line and
headers until the next write, and sends the two as one. A response body is written in the same
step of the same task as its headers (``send`` does not suspend unless the peer is slow), so
the hold almost always ends at once; should no body write follow (a ``HEAD``, a streamed body
that awaits first), the held bytes go out on the loop's next turn, and before the transport
closes. Nothing else changes: every other write, and every other transport method, passes
straight through.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_LIMIT = 16 * 1024  # a header block larger than this is written at once


class OneWriteTransport:
    """Delegates to the real transport; holds one status-line-and-headers write."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + bytes(data))
            return
        if len(data) <= HEAD_LIMIT and bytes(data[:5]) == b"HTTP/" and data[-4:] == b"\r\n\r\n":
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        super().connection_made(OneWriteTransport(transport, self.loop))  # type: ignore[arg-type]
