"""Natural batching: concurrent calls of one database function go to the server together.

A redemption's hold, capture and cancel are each one database function, atomic on its own
(migrations 0008 and 0010). Sent one per statement, each call pays a round trip, a statement's
start-up and a commit of its own — at eight concurrent calls, most of a redemption's cost
(bench/README.md, "Thirteenth session"). ``Batcher`` sends the calls of one function that are
waiting at the same moment as one statement, ``SELECT ARRAY[f(…), f(…), …]``: one round trip,
one transaction, one commit (a group commit decided where the work is known; TigerBeetle
batches its requests likewise).

- **No waiting when idle.** A call goes after the event loop's current step (so calls made in
  the same step go together). Under light load a batch is one call, sent as the plain
  statement; up to ``SPLIT_FROM`` calls go as one batch.
- **Half now, half next.** When more calls than that wait for an idle function, half of them
  go at once and the other half waits for that batch, then goes whole (with at most
  ``max_calls`` per batch), sent before the first half's callers resume. They work on their
  answers — and send their next calls, to other functions — while the second half runs, so
  the client and two server backends work at once where one batch of all would have left them
  taking turns: with eight redemptions in step, +20 % of them per second for 13 % more CPU
  each (bench/README.md, "Fourteenth session").
- **Answers, then their callers' next calls.** A batch's callers are answered after the
  function's next batch is sent, and the calls they make in turn go once they have run — not
  after every other caller answered at the same moment (the server then idles 2 % of the
  time instead of 14 %, eight redemptions in step).
- **A second batch for a full one, or beside a stalled one.** While a batch of the function
  runs, calls wait for it, unless ``max_calls`` of them are waiting (then a full batch goes
  beside it, so a burst is not held to one backend) or it has been on the server ``STALL_S``
  (a batch takes a few milliseconds; one that waits on a row lock must not hold up the rest of
  the function's calls). At most ``in_flight`` batches of a function run at once.
- **Same outcome as alone.** The calls of a batch run one after another in one transaction,
  each seeing what the ones before it wrote, in ``order`` (the caller's lock key, a member: two
  batches then take their row locks in one order). If the server refuses the batch — a
  deadlock, a serialization failure, a lock waited on too long, an error one call raises —
  nothing of it stays, and every call of it is sent again alone, so each gets exactly the
  outcome (value or error) it would have had without batching. A call's own typed outcomes
  are values, so they never fail a batch. If the batch gets no answer (the connection was
  lost), it may have committed: it is not sent again, and each caller gets the error, as a
  call of its own would have (a redemption's client retries with its idempotency key).
- **Durable before answered.** A caller gets its value after the batch's commit.
- **Cancellation.** A caller cancelled before its batch is sent leaves the queue (nothing
  runs, as when a request is cancelled before its statement is sent); once sent, its call
  completes with the batch and the value is dropped. ``close`` (``Database.dispose``) waits
  for every queued and running batch.

Connections come from the database's driver pool (``Database.transaction``'s), one per
running batch, so batching does not change the connection budget.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

MAX_CALLS = 16  # per batch: bounds a statement's parameters and its transaction's locks
IN_FLIGHT = 2  # batches of one function at a time (a second for a full one, or a stalled first)
SPLIT_FROM = 4  # an idle function's waiting calls go half now, half next, from this many on
STALL_S = 0.02  # a batch on the server this long lets the waiting calls go beside it
LOCK_TIMEOUT_MS = 200  # a batch's wait for a row lock before its calls go alone


class _Pool(Protocol):
    async def acquire(self) -> Any: ...

    def release(self, conn: Any, *, reusable: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class DbFunction:
    """A database function called as a statement of its own: its name and its arguments' SQL
    types (each argument is cast, so a batch's statement needs no type inference)."""

    name: str
    types: tuple[str, ...]
    sql: str = field(init=False, compare=False)  # the statement of one call

    def __post_init__(self) -> None:
        object.__setattr__(self, "sql", f"SELECT {self._call(0)}")

    @functools.lru_cache(maxsize=256)  # noqa: B019 - a few functions, each kept for good
    def batch_sql(self, calls: int) -> str:
        """The statement of ``calls`` calls, evaluated in order, their values as one array.

        Its transaction waits at most ``LOCK_TIMEOUT_MS`` for a row lock: a call waiting on a
        long transaction would hold up the whole batch, so the batch gives up instead and its
        calls go alone (where that one waits as long as it would have anyway).
        """
        calls_sql = ", ".join(self._call(i) for i in range(calls))
        return (
            f"SELECT ARRAY[{calls_sql}] "
            f"FROM (SELECT set_config('lock_timeout', '{LOCK_TIMEOUT_MS}ms', true)) AS batch"
        )

    def _call(self, i: int) -> str:
        first = i * len(self.types)
        args = ", ".join(f"${first + j + 1}::{t}" for j, t in enumerate(self.types))
        return f"{self.name}({args})"


_ALONE: Any = object()  # the batch failed: send the call again on its own


@dataclass(slots=True)
class BatchStats:
    """What the batcher has sent: statements, the calls in them, the calls sent again alone
    after their batch failed."""

    statements: int = 0
    calls: int = 0
    resent: int = 0


@dataclass(slots=True, eq=False)  # a call is itself: the queue finds it by identity
class _Call:
    args: Sequence[Any]
    order: int
    done: asyncio.Future[Any]


@dataclass(slots=True)
class _Lane:
    """One function's queue and its running batches."""

    queue: list[_Call] = field(default_factory=list)
    started: list[float] = field(default_factory=list)  # each running batch's start time
    held: int = 0  # calls left waiting when the last batch went: they go next, together
    recheck: asyncio.TimerHandle | None = None  # when the running batch turns STALL_S old
    scheduled: bool = False


class Batcher:
    """Sends each function's concurrent calls together (see the module's docstring)."""

    def __init__(self, pool: _Pool, *, max_calls: int = MAX_CALLS, in_flight: int = IN_FLIGHT):
        if max_calls < 1 or in_flight < 1:
            raise ValueError("a batch holds at least one call, and at least one batch runs")
        self._pool = pool
        self._max_calls = max_calls
        self._in_flight = in_flight
        self._lanes: dict[DbFunction, _Lane] = {}
        self._running: set[asyncio.Task[None]] = set()
        self.stats = BatchStats()

    async def call(self, fn: DbFunction, args: Sequence[Any], *, order: int = 0) -> Any:
        """``fn(*args)``'s value, committed; its error, as the call alone would raise it."""
        if len(args) != len(fn.types):
            raise TypeError(f"{fn.name} takes {len(fn.types)} arguments, not {len(args)}")
        lane = self._lanes.get(fn) or self._lanes.setdefault(fn, _Lane())
        call = _Call(args, order, asyncio.get_running_loop().create_future())
        lane.queue.append(call)
        self._kick(fn, lane)
        try:
            value = await call.done
        except asyncio.CancelledError:
            if call in lane.queue:
                lane.queue.remove(call)
            raise
        if value is _ALONE:
            self.stats.resent += 1
            return await self._send(fn.sql, args)
        return value

    async def close(self) -> None:
        """Wait until every call made so far has its answer (the batcher stays usable)."""
        while self._running or any(lane.queue for lane in self._lanes.values()):
            if self._running:
                await asyncio.gather(*self._running, return_exceptions=True)
            else:
                await asyncio.sleep(0)  # a batch about to start

    def _kick(self, fn: DbFunction, lane: _Lane) -> None:
        if lane.queue and len(lane.started) < self._in_flight and not lane.scheduled:
            lane.scheduled = True
            asyncio.get_running_loop().call_soon(self._start, fn, lane)

    def _start(self, fn: DbFunction, lane: _Lane) -> None:
        lane.scheduled = False
        loop = asyncio.get_running_loop()
        while lane.queue and len(lane.started) < self._in_flight:
            size = self._next_size(lane, loop.time())
            if not size:
                if lane.recheck is None:  # look again once the running batch is stalled
                    lane.recheck = loop.call_at(
                        min(lane.started) + STALL_S, self._recheck, fn, lane
                    )
                return
            batch, lane.queue = lane.queue[:size], lane.queue[size:]
            lane.held = len(lane.queue)
            started = loop.time()
            lane.started.append(started)
            task = loop.create_task(self._run(fn, lane, batch, started))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    def _next_size(self, lane: _Lane, now: float) -> int:
        """How many of the waiting calls go now (the module's "half now, half next")."""
        waiting = len(lane.queue)
        if lane.started:  # a second batch: a full one, or the first is stalled
            if waiting >= self._max_calls:
                return self._max_calls
            return min(self._max_calls, waiting) if now - min(lane.started) >= STALL_S else 0
        if lane.held:  # the calls left waiting go whole
            return min(self._max_calls, waiting)
        return min(self._max_calls, waiting, max(SPLIT_FROM, -(-waiting // 2)))

    def _recheck(self, fn: DbFunction, lane: _Lane) -> None:
        lane.recheck = None
        self._kick(fn, lane)

    async def _run(self, fn: DbFunction, lane: _Lane, batch: list[_Call], started: float) -> None:
        batch.sort(key=lambda c: c.order)
        self.stats.statements += 1
        self.stats.calls += len(batch)
        values: list[Any] = []
        failure: Exception | None = None
        try:
            if len(batch) == 1:
                values = [await self._send(fn.sql, batch[0].args)]
            else:
                args = list(itertools.chain.from_iterable(c.args for c in batch))
                values = await self._send(fn.batch_sql(len(batch)), args)
        except asyncio.CancelledError:  # the loop is shutting down
            for c in batch:
                c.done.cancel()
            raise
        except asyncpg.PostgresError as exc:
            failure = exc
            if len(batch) > 1 and _rolled_back(exc):
                # The server refused the statement, so its transaction rolled back: nothing of
                # the batch stays, and each call goes again alone for its own outcome.
                values, failure = [_ALONE] * len(batch), None
        except Exception as exc:
            # No answer (the connection was lost, no connection was free): the batch may have
            # committed, so it is not sent again; each caller gets the error, as it would alone,
            # and retries with its idempotency key.
            failure = exc
        finally:
            lane.started.remove(started)
            self._kick(fn, lane)
        # After the next batch's start (scheduled just above), so its statement is on its way
        # before these callers resume and work on their answers.
        asyncio.get_running_loop().call_soon(self._answer, batch, values, failure)

    def _answer(self, calls: list[_Call], values: list[Any], failure: Exception | None) -> None:
        if failure is not None:
            _fail(calls, failure)
        else:
            for c, value in zip(calls, values, strict=True):
                if not c.done.done():
                    c.done.set_result(value)
        # Once these callers have run their step (their wake-ups are queued ahead of this), the
        # calls they made go: not after whatever else was answered in the same moment.
        asyncio.get_running_loop().call_soon(self._start_due)

    def _start_due(self) -> None:
        for fn, lane in self._lanes.items():
            if lane.scheduled:
                self._start(fn, lane)

    async def _send(self, sql: str, args: Sequence[Any]) -> Any:
        """One statement on a pooled connection (autocommit: atomic, committed on success)."""
        conn = await self._pool.acquire()
        reusable = False
        try:
            value = await conn.fetchval(sql, *args)
            reusable = True
            return value
        except Exception:
            reusable = not conn.is_closed()  # a server error leaves the connection idle
            raise
        finally:
            # Closed, or cancelled with the statement maybe still running: not handed out again.
            self._pool.release(conn, reusable=reusable)


def _fail(calls: Sequence[_Call], exc: Exception) -> None:
    for c in calls:
        if not c.done.done():
            c.done.set_exception(exc)


def _rolled_back(exc: asyncpg.PostgresError) -> bool:
    """Whether the server's error means the statement's transaction rolled back. A lost
    connection, or the server shutting the session down (it may do so after the commit, before
    the answer), leaves that unknown; a cancelled statement (its timeout) did roll back."""
    if isinstance(exc, asyncpg.QueryCanceledError):
        return True
    return not isinstance(
        exc, asyncpg.PostgresConnectionError | asyncpg.exceptions.OperatorInterventionError
    )
