"""Parsing and preparing batches in a worker process while the database writes the last one.

Parsing, hashing and encryption are pure Python and hold the GIL: in a thread they only take
turns with the writer. So once an import spans more than one batch, a forked worker process
runs the item iterator and ``prepare`` and hands finished batches back through a pipe; the
importing process keeps the database work, the hooks and the report.

- Constant memory: one batch is being written, one waits received (``_Inbox``), and the worker
  blocks on the pipe with the next until that one is taken.
- No orphans: Ctrl-C is left to the importing process, which ends the worker in ``finally``; a
  worker whose importer died gets a broken pipe at its next batch and exits.
- Same errors: a ``HubError`` from the iterator ends the stream as ``report.failed``, as before;
  any other exception is raised again in the importer.
- The iterator may record on the report which connector read a file and which files it refused
  (``hub.importer`` does); those two maps travel back with every batch.

Fork is what lets the iterator (a generator over open files) carry on in the worker without being
picklable; where fork is not available everything runs in-process, one batch at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import multiprocessing
import pickle
import signal
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from hub.core.errors import HubError
from hub.core.records import Item
from hub.flows.ingest.report import IngestReport

_T = TypeVar("_T")
Chunk = list[tuple[str, Item]]
_JOIN_TIMEOUT_S = 5.0
# Batches the importing process holds received but not yet taken (``_Inbox``). One: more let the
# worker run further ahead of what has landed, so fewer of its buyers are confirmed in time to
# be skipped (alternating 1,000,000-row imports: 27.2k and 27.9k rows/s with one, 24.2k and 26.0k
# with two, 25.0k and 25.5k with three, 24.4k and 25.3k reading only when taking).
INBOX_DEPTH = 1
_GC_THRESHOLDS = (100_000, 50, 100)


@contextlib.contextmanager
def bulk_collector() -> Iterator[None]:
    """The cyclic collector set for one long import in this process, and set back after: the
    worker's whole life, and the importing process's import in ``hub import``. Only for a
    process that runs nothing else meanwhile (never a server): the thresholds are the
    process's.

    The importing process keeps what the hooks build (identity's kept records, loyalty's
    state) while allocating millions of short-lived objects per batch; at the default
    thresholds the collector ran ~30,000 times in a 200,000-row import with hooks and took a
    fifth of its wall time (23.6 of 111.6 s), walking the whole grown heap on every full
    collection. Objects from before the import are frozen: never scanned."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


class WorkerDiedError(RuntimeError):
    """The worker process ended without saying why (killed, out of memory)."""


def _chunks(items: Iterator[tuple[str, Item]], size: int) -> Iterator[Chunk]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def _report_state(report: IngestReport) -> tuple[dict[str, str], dict[str, str]]:
    return dict(report.chosen), dict(report.refused_files)


def _work(
    reader: Connection,
    writer: Connection,
    chunks: Iterator[Chunk],
    prepare: Callable[[Chunk], Any],
    report: IngestReport,
    acks_reader: Connection,
    acks_writer: Connection,
    confirm: Callable[..., None] | None,
) -> None:
    """The worker's whole life: prepare every remaining chunk and send it, then say done.
    After each send, the acknowledgements of landed batches waiting on ``acks`` go to
    ``confirm`` before the next chunk is read."""
    reader.close()  # else a dead importer's pipe stays open here and a send blocks forever
    acks_writer.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the importer's to handle
    # Parsing allocates millions of short-lived, acyclic objects; at the default thresholds the
    # collector ran so often it took a third of the worker's time (measured). Objects inherited
    # from the importer are frozen: never scanned, and their pages never copied for the scan.
    try:
        with bulk_collector():
            for chunk in _acknowledged(chunks, acks_reader, confirm):
                _send(writer, ("batch", prepare(chunk), _report_state(report)))
                # What outlives a batch (memos, the buyers seen) lives long, and each young-
                # generation collection scanned it once more: ~8 % of the worker (measured at
                # 200,000 rows). Frozen here, it is never scanned again, and still freed by
                # reference counting when a memo lets it go. Preparing makes no reference
                # cycles (a test holds it to that), so freezing keeps nothing a collection
                # would free.
                gc.freeze()
        _send(writer, ("done", None, _report_state(report)))
    except (BrokenPipeError, ConnectionResetError):
        return  # the importer is gone; nobody is left to tell
    except HubError as exc:
        _send(writer, ("failed", exc.message, _report_state(report)))
    except Exception as exc:  # every other failure is raised again in the importer
        _send(writer, ("error", _portable(exc), _report_state(report)))
    finally:
        writer.close()
        acks_reader.close()


def _send(writer: Connection, message: tuple[str, Any, Any]) -> None:
    """``message`` pickled by the C pickler. ``Connection.send`` pickles with
    ``ForkingPickler``, whose reducer table (for sockets and descriptors, which a batch never
    holds) is looked up per object in Python: a 3.3 MB batch took 9.3 ms to pickle that way,
    6.0 ms with ``pickle.dumps``. The importer unpickles either with ``pickle.loads``."""
    writer.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))


def _acknowledged(
    chunks: Iterator[Chunk], acks: Connection, confirm: Callable[..., None] | None
) -> Iterator[Chunk]:
    """``chunks``, passing each acknowledgement already received to ``confirm`` before the
    next chunk is read (the importer acknowledges a batch once it is committed)."""
    while True:
        try:
            while acks.poll():
                ack = acks.recv()
                if confirm is not None:
                    confirm(*ack)
        except (EOFError, OSError):
            pass  # the importer is gone: the next send says so
        chunk = next(chunks, None)
        if chunk is None:
            return
        yield chunk


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives the trip through the pipe, else a stand-in naming its class (not
    its message, which may quote a row)."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # an exception that cannot travel is described instead
        return RuntimeError(f"import worker failed with {exc.__class__.__name__}")
    return exc


class _Inbox:
    """The worker's messages, read off the pipe by a thread as soon as they are sent.

    The worker pickles a batch and writes it into the pipe, whose buffer holds a sliver of it:
    read only when the writer is ready for the next batch, the worker waited there until then,
    and the writer waited for the worker whenever the worker fell behind. A thread here takes
    each message whole (its reads release the GIL) and keeps up to ``depth`` of them, so the
    worker goes on to the next batch at once; they are unpickled only when taken."""

    def __init__(self, conn: Connection, depth: int) -> None:
        self._conn = conn
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._room = threading.Semaphore(depth)
        self._closed = False
        self._thread = threading.Thread(target=self._read, name="hub-import-inbox", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            self._room.acquire()
            raw: bytes | None
            try:
                raw = None if self._closed else self._conn.recv_bytes()
            except (EOFError, OSError):
                raw = None  # the worker is gone (or its pipe was closed here)
            try:
                self._loop.call_soon_threadsafe(self._queue.put_nowait, raw)
            except RuntimeError:  # the event loop is closed: nobody is waiting
                return
            if raw is None:
                return

    async def receive(self) -> tuple[str, Any, tuple[dict[str, str], dict[str, str]]]:
        """The next message, awaited without blocking the event loop while the worker is busy."""
        raw = await self._queue.get()
        if raw is None:
            raise WorkerDiedError("the import worker process ended unexpectedly")
        self._room.release()
        message: tuple[str, Any, tuple[dict[str, str], dict[str, str]]] = pickle.loads(raw)
        return message

    def close(self, timeout: float) -> None:
        """Stop reading (the worker has ended or been stopped, so the pipe is at its end)."""
        self._closed = True
        self._room.release()  # a reader waiting for room goes on, sees it is closed, ends
        self._thread.join(timeout)


def _next_chunk(chunks: Iterator[Chunk], report: IngestReport) -> Chunk | None:
    """The next slice; None at the end, or (with ``report.failed`` set) when reading failed."""
    try:
        return next(chunks, None)
    except HubError as exc:
        report.failed = exc.message
        return None


async def prepared_batches(
    items: Iterator[tuple[str, Item]],
    *,
    prepare: Callable[[Chunk], _T],
    batch_size: int,
    report: IngestReport,
    parallel: bool = False,
    confirm: Callable[..., None] | None = None,
) -> AsyncGenerator[_T, tuple[Any, ...] | None]:
    """``prepare`` of each ``batch_size`` slice of ``items``, in order.

    The first batch is prepared here (a small import never starts a process); if more follow,
    a worker prepares them while the caller writes this one. A ``HubError`` from ``items`` sets
    ``report.failed`` and ends the stream after the batches before it.

    What the caller sends in (``asend``) after a batch is an acknowledgement: the arguments of
    ``confirm``, called where ``prepare`` runs (in the worker, before it reads its next chunk).
    """
    chunks = _chunks(items, batch_size)
    first = _next_chunk(chunks, report)
    if first is None:
        return
    # Forking is for the CLI, a single-threaded process; a server (threads, open sockets) must
    # not fork, so it prepares in-process.
    if (
        not parallel
        or len(first) < batch_size
        or "fork" not in multiprocessing.get_all_start_methods()
    ):
        ack = yield prepare(first)
        while True:
            if ack is not None and confirm is not None:
                confirm(*ack)
            chunk = _next_chunk(chunks, report)
            if chunk is None:
                return
            ack = yield prepare(chunk)
    # Prepared before the fork, so the worker carries on from the state it left (``prepare``
    # may remember what earlier batches held).
    prepared_first = prepare(first)
    reader, writer = multiprocessing.Pipe(duplex=False)
    acks_reader, acks = multiprocessing.Pipe(duplex=False)
    worker = multiprocessing.get_context("fork").Process(
        target=_work,
        args=(reader, writer, chunks, prepare, report, acks_reader, acks, confirm),
        name="hub-import-worker",
        daemon=True,
    )
    worker.start()
    writer.close()  # only the worker writes; its exit then reads as EOF here
    acks_reader.close()
    inbox = _Inbox(reader, INBOX_DEPTH)
    finished = False

    def acknowledge(ack: tuple[Any, ...] | None) -> None:
        # Small (a batch number and a bounded set), and the worker reads them after each batch
        # it sends, so this never waits on a worker that is itself waiting to send.
        if ack is not None and confirm is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
                acks.send(ack)

    try:
        acknowledge((yield prepared_first))
        while True:
            kind, payload, (chosen, refused) = await inbox.receive()
            report.chosen.update(chosen)
            report.refused_files.update(refused)
            if kind == "batch":
                acknowledge((yield payload))
                continue
            finished = True
            if kind == "failed":
                report.failed = payload
            elif kind == "error":
                raise payload
            return
    finally:
        acks.close()
        # A worker that said its last word is exiting; any other is stopped (error, Ctrl-C).
        worker.join(_JOIN_TIMEOUT_S if finished else 0)
        if worker.is_alive():
            worker.terminate()
            worker.join(_JOIN_TIMEOUT_S)
        if worker.is_alive():
            worker.kill()
            worker.join()
        inbox.close(_JOIN_TIMEOUT_S)  # the worker is gone: its pipe reads as ended
        reader.close()
