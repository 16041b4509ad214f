"""`hub serve`'s HTTP protocol: one socket write per response, and nothing else changed."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from hub.http_server import HEAD_LIMIT, OneWriteHttpToolsProtocol, OneWriteTransport


class Recording(asyncio.Transport):
    """A transport that records what reaches the socket (the unit under test is the wrapper)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 1) if name == "peername" else default


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"


async def test_headers_and_body_leave_in_one_write() -> None:
    real = Recording()
    wrapped = OneWriteTransport(real, asyncio.get_running_loop())
    wrapped.write(HEAD)
    assert real.writes == []
    wrapped.write(b"hello")
    assert real.writes == [HEAD + b"hello"]
    await asyncio.sleep(0)  # the safety-net flush finds nothing left to send
    assert real.writes == [HEAD + b"hello"]


async def test_headers_without_a_body_leave_on_the_next_turn_or_at_close() -> None:
    loop = asyncio.get_running_loop()
    real = Recording()
    wrapped = OneWriteTransport(real, loop)
    wrapped.write(HEAD)  # e.g. a HEAD response
    await asyncio.sleep(0)
    assert real.writes == [HEAD]

    real = Recording()
    wrapped = OneWriteTransport(real, loop)
    wrapped.write(HEAD)
    wrapped.close()
    assert real.writes == [HEAD]
    assert real.closed


async def test_other_writes_pass_straight_through() -> None:
    real = Recording()
    wrapped = OneWriteTransport(real, asyncio.get_running_loop())
    big = b"HTTP/1.1 200 OK\r\nx: " + b"a" * HEAD_LIMIT + b"\r\n\r\n"
    for data in (b"a body chunk", b"HTTP/1.1 100 Continue but not a header block", big):
        wrapped.write(data)
    assert real.writes == [b"a body chunk", b"HTTP/1.1 100 Continue but not a header block", big]
    assert wrapped.get_extra_info("peername") == ("127.0.0.1", 1)  # delegated


async def _stream() -> Iterator[bytes]:
    for part in (b"one,", b"two"):
        await asyncio.sleep(0.01)
        yield part


def _app() -> Starlette:
    async def plain(request: Request) -> Response:
        return PlainTextResponse("hello")

    async def streamed(request: Request) -> Response:
        return StreamingResponse(_stream())  # type: ignore[arg-type]

    return Starlette(
        routes=[Route("/plain", plain, methods=["GET", "HEAD"]), Route("/stream", streamed)]
    )


@pytest.fixture
def server() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = uvicorn.Config(
        _app(), host="127.0.0.1", port=port, http=OneWriteHttpToolsProtocol, log_level="warning"
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    yield port
    running.should_exit = True
    thread.join(10)


def _exchange(sock: socket.socket, request: bytes, until: bytes) -> bytes:
    sock.sendall(request)
    got = b""
    while until not in got:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {got!r}"
        got += chunk
    return got


def test_keep_alive_head_and_streamed_responses_arrive_whole(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        for _ in range(3):  # keep-alive: each response complete before the next request
            got = _exchange(sock, b"GET /plain HTTP/1.1\r\nHost: t\r\n\r\n", b"hello")
            assert got.startswith(b"HTTP/1.1 200 OK")
            assert got.endswith(b"\r\n\r\nhello")
        got = _exchange(sock, b"HEAD /plain HTTP/1.1\r\nHost: t\r\n\r\n", b"\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 200 OK")
        assert got.endswith(b"\r\n\r\n")
        got = _exchange(sock, b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n", b"0\r\n\r\n")
        assert b"transfer-encoding: chunked" in got
        assert b"one," in got
        assert b"two" in got
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        got = _exchange(
            sock, b"GET /plain HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", b"hello"
        )
        assert sock.recv(1) == b""  # flushed, then closed
