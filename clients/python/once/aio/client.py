"""``once.aio.Once``: a queue (or queues) on a ``redis.asyncio.Redis``, every method of ``once.Once`` awaitable,
with the same arguments and results.

The methods are the sync client's own, run without I/O: ``_Replay`` is a sync ``Once`` whose redis client is a
stand-in. Run on it, a method stops at the first round trip it would make (``_Send`` carries the commands); that
round trip is awaited here, on the real client, and the method is run again, this time handed the replies, which
it parses and returns. So each command's arguments are built, and each reply parsed (a WRONGTYPE named, ...), in
one place for both clients; a method that makes several round trips in turn is run once more per round trip.
"""
import functools
from typing import Any, Awaitable, Callable, Concatenate, List, Optional, ParamSpec, Sequence, Tuple, TypeVar, Union

import redis

from ..client import Once as SyncOnce
from ..client import QueuedId
from ..errors import WrongTypeError, wrong_type_error
from . import blocking

P = ParamSpec("P")
R = TypeVar("R")


class _Send(BaseException):
    """Raised inside a method run on ``_Replay`` at a round trip it has no reply for yet: ``commands`` to send in one
    write, ``wait_ms`` how long they may wait on the server (None: not at all), ``inline`` whether error replies are
    handed back as values (as ``once.blocking`` does) rather than raised. A BaseException, so that no ``except
    Exception`` of the sync code mistakes it for a failure of its own."""

    def __init__(self, commands: List[List[Any]], wait_ms: Optional[int], inline: bool):
        super().__init__(commands)
        self.commands, self.wait_ms, self.inline = commands, wait_ms, inline


# ``once.blocking`` reads each reply with ``read_timeout(conn.socket_timeout, wait_ms)``: with this socket timeout
# the read timeout tells the wait back (None: wait 0, endless; the timeout itself: no wait; else wait + it).
_SOCKET_TIMEOUT = 1.0


class _StandIn:
    """What the sync client sees as its redis client: each round trip it makes (``execute_command``, a pipeline,
    ``once.blocking``'s one write on one connection) is answered from ``replies``, in order, or stops the method
    with ``_Send``."""

    def __init__(self) -> None:
        self.replies: List[List[Any]] = []
        self.connection_pool = self
        self._commands: List[List[Any]] = []
        self._read: Optional[List[Any]] = None

    def _round_trip(self, commands: List[List[Any]], wait_ms: Optional[int], inline: bool) -> List[Any]:
        if self.replies:
            return self.replies.pop(0)
        raise _Send(commands, wait_ms, inline)

    def execute_command(self, *args: Any, **options: Any) -> Any:
        reply = self._round_trip([list(args)], None, False)[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def type(self, key: str) -> Any:
        return self.execute_command("TYPE", key)

    def pipeline(self, transaction: bool = True) -> "_Pipeline":
        return _Pipeline(self)

    # the connection pool and connection API that once.blocking uses
    socket_timeout = _SOCKET_TIMEOUT

    def get_connection(self, *args: Any, **kwargs: Any) -> "_StandIn":
        return self

    def release(self, conn: Any) -> None:
        pass

    def disconnect(self) -> None:
        pass

    def pack_commands(self, commands: Any) -> List[List[Any]]:
        return [list(c) for c in commands]

    def send_packed_command(self, commands: List[List[Any]]) -> None:
        self._commands, self._read = commands, None

    def read_response(self, timeout: Optional[float] = None) -> Any:
        if self._read is None:
            wait = 0 if timeout is None else None if timeout == _SOCKET_TIMEOUT else round(
                (timeout - _SOCKET_TIMEOUT) * 1000)
            self._read = list(self._round_trip(self._commands, wait, True))
        reply = self._read.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


class _Pipeline:
    def __init__(self, client: _StandIn):
        self.client = client
        self.commands: List[List[Any]] = []

    def execute_command(self, *args: Any) -> "_Pipeline":
        self.commands.append(list(args))
        return self

    def execute(self, raise_on_error: bool = True) -> List[Any]:
        replies = self.client._round_trip(self.commands, None, False)
        error = next((r for r in replies if isinstance(r, Exception)), None)
        if raise_on_error and error is not None:
            raise error
        return replies


class _Replay(SyncOnce):
    """A sync Once on a ``_StandIn``: it sends nothing."""

    def __init__(self, queue: Union[str, Sequence[str]], decode: Union[bool, str]):
        super().__init__(_StandIn(), queue, decode=decode)

    def _pushed(self, job_id: Any, queue: Optional[str] = None) -> Any:
        return job_id        # a Pushed's result() would wait synchronously: here ``await once.result(id, wait=...)``

    def _flow_node(self, job_id: Any, queue: str) -> Any:
        # an id that knows its queue and, set by flow(), its children (no result(): that would wait synchronously)
        return QueuedId(job_id, queue) if isinstance(job_id, str) else job_id

    def _controlled(self, job: Any) -> Any:
        return job           # job.progress(), job.deps() are synchronous: here ``await once.progress(job, data)``

    def _durable(self, args: List[Any], replicas: int, timeout: int, aof: bool) -> Any:
        raise NotImplementedError("durable pushes (wait_replicas, wait_aof) are not in once.aio yet: push with "
                                  "once.Once, or send WAIT yourself")


class _TypeOf:
    """Stands in for a client whose TYPE reply is already known, for ``errors.wrong_type_error``."""

    def __init__(self, held: Any):
        self.held = held

    def type(self, key: str) -> Any:
        return self.held


async def wrong_type(r: Any, key: str) -> WrongTypeError:
    """The WrongTypeError for ``key`` (asked with TYPE on the redis.asyncio client ``r``), as
    ``errors.wrong_type_error`` makes it."""
    try:
        held = await r.type(key)
    except redis.RedisError:            # TYPE not permitted or the server gone: say less
        held = None
    return wrong_type_error(_TypeOf(held), key)


def _awaitable(method: Callable[Concatenate[SyncOnce, P], R]) -> Callable[Concatenate["Once", P], Awaitable[R]]:
    """The sync client's ``method``, awaitable on a ``once.aio.Once``."""

    @functools.wraps(method)
    async def run(self: "Once", *args: P.args, **kwargs: P.kwargs) -> R:
        replies: List[List[Any]] = []
        while True:
            self._replay.redis.replies = list(replies)
            try:
                return method(self._replay, *args, **kwargs)
            except _Send as send:
                replies.append(await self._round_trip(send))

    return run


class Once:
    """A queue named ``queue`` in the server behind ``redis_client``, a ``redis.asyncio.Redis`` (either protocol,
    any settings). The methods are ``once.Once``'s, awaitable; see there for each one. Calls that wait on the
    server (``reserve(block_ms=...)``) run on one connection read with a deadline longer than the wait, never
    re-sent by the client's retries (``once.aio.blocking``), as ``call()`` and ``result(wait=...)`` do. ``push``
    returns the id as a plain str (wait for the outcome with ``await once.result(id, wait=...)``), ``flow`` the
    root's as a ``QueuedId`` (a str that knows its queue and its ``children``), and a reserved Job has no
    ``progress()`` or ``deps()`` (``await once.progress(job, data)``, ``await once.deps(job)``). Not here yet:
    durable pushes (``wait_replicas``, ``wait_aof``), results of the async worker's handlers, and Redis Cluster
    clients.

        once = Once(redis.asyncio.Redis(), "emails")
        await once.push("hello")
        await once.worker(handle, concurrency=20)
    """

    def __init__(self, redis_client: Any, queue: Union[str, Sequence[str]], *, decode: Union[bool, str] = False):
        self.redis = redis_client
        self._replay = _Replay(queue, decode)
        self._workers: List[Any] = []

    @property
    def queue(self) -> str:
        return self._replay.queue

    @property
    def queues(self) -> Tuple[str, ...]:
        return self._replay.queues

    @property
    def decode(self) -> Union[bool, str]:
        return self._replay.decode

    def __repr__(self) -> str:
        return f"once.aio.Once(queue={self.queue!r})"

    async def _round_trip(self, send: _Send) -> List[Any]:
        """The replies to what a sync method would send; an error reply comes back as its exception, and the sync
        code raises it (naming a wrong type, ...) as it would have."""
        if len(send.commands) == 1 and send.wait_ms is None and not send.inline:
            try:
                return [await self.redis.execute_command(*send.commands[0])]
            except redis.ResponseError as exc:
                return [exc]
        return await blocking.call(self.redis, send.commands, send.wait_ms)

    push = _awaitable(SyncOnce.push)
    push_many = _awaitable(SyncOnce.push_many)
    adopt = _awaitable(SyncOnce.adopt)
    list = _awaitable(SyncOnce.list)
    reserve = _awaitable(SyncOnce.reserve)
    ack_reserve = _awaitable(SyncOnce.ack_reserve)
    ack = _awaitable(SyncOnce.ack)
    nack = _awaitable(SyncOnce.nack)
    extend = _awaitable(SyncOnce.extend)
    retry = _awaitable(SyncOnce.retry)
    cancel = _awaitable(SyncOnce.cancel)
    inspect = _awaitable(SyncOnce.inspect)
    stats = _awaitable(SyncOnce.stats)
    group = _awaitable(SyncOnce.group)
    groups = _awaitable(SyncOnce.groups)
    schedule = _awaitable(SyncOnce.schedule)
    unschedule = _awaitable(SyncOnce.unschedule)
    schedules = _awaitable(SyncOnce.schedules)
    result = _awaitable(SyncOnce.result)
    call = _awaitable(SyncOnce.call)
    progress = _awaitable(SyncOnce.progress)
    was_cancelled = _awaitable(SyncOnce.was_cancelled)
    configure = _awaitable(SyncOnce.configure)
    after = _awaitable(SyncOnce.after)
    deps = _awaitable(SyncOnce.deps)
    flow = _awaitable(SyncOnce.flow)

    async def worker(self, handler: Callable[[Any], Any], error_handler: Optional[Callable[..., Any]] = None,
                     monitor_handler: Optional[Callable[..., Any]] = None, *, handle_signals: bool = True,
                     **options: Any) -> Any:
        """Runs ``handler`` on the queue's jobs until ``stop()``, a cancel, or SIGINT/SIGTERM (with
        ``handle_signals``, in the main thread); returns the WorkerSummary. See ``once.aio.Worker`` for the
        options. A queue key of another type ends the program with one line (``SystemExit(1)``)."""
        from .worker import Worker

        w = Worker(self, handler, error_handler, monitor_handler, **options)
        try:
            return await w.run(handle_signals=handle_signals)
        except WrongTypeError:
            raise SystemExit(1) from None

    async def stop(self) -> None:
        """Closes every worker running on this Once: jobs in hand finish and are acked, no more are reserved."""
        for w in list(self._workers):
            await w.close()
