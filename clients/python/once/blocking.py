"""Commands that wait on the server (``ONCE.RESERVE ... BLOCK``, ``ONCE.EVENTS ... BLOCK``, ``WAIT``), run so that
a redis-py client made with its defaults survives them.

redis-py 8 gives every connection a 5 s socket timeout and retries a command whose read timed out. A blocking
command then fails after its 5 s, and is sent again and again: a RESERVE served to a connection already dropped
leaves its job reserved until the lease runs out, and costs the job a try. So these commands are sent on one
connection of the client (its single connection, or one taken from its pool), read with a timeout longer than the
wait (none when the wait is endless), and never through the client's Retry: a timeout or a broken connection is
raised to the caller, the connection is dropped, nothing is sent twice.
"""
import inspect
from typing import Any, List, Optional, Sequence

import redis
from redis.exceptions import MovedError


def node_client(client: Any, key: str) -> Any:
    """The client that talks to the node owning ``key``: the client itself, or for a ``RedisCluster`` the node's
    own ``Redis``."""
    if hasattr(client, "get_node_from_key") and hasattr(client, "get_redis_connection"):
        return client.get_redis_connection(client.get_node_from_key(key))
    return client


def _pool_takes_name() -> bool:
    try:
        p = inspect.signature(redis.ConnectionPool.get_connection).parameters.get("command_name")
        return p is not None and p.default is inspect.Parameter.empty
    except (ValueError, TypeError):
        return True


_POOL_TAKES_NAME = _pool_takes_name()


def take_connection(pool: Any, command_name: str) -> Any:
    """A connection from ``pool`` (redis-py before 5.3 wants the command's name)."""
    return pool.get_connection(command_name) if _POOL_TAKES_NAME else pool.get_connection()


def read_timeout(socket_timeout: Optional[float], wait_ms: Optional[int]) -> Optional[float]:
    """Seconds to wait for one reply of a command that may wait ``wait_ms`` on the server (0: forever): the wait
    plus the connection's own timeout as slack; None (no timeout) for an endless wait or a connection without one."""
    if wait_ms is None:
        return socket_timeout
    if wait_ms == 0 or socket_timeout is None:
        return None
    return wait_ms / 1000.0 + socket_timeout


def _send(node: Any, commands: Sequence[Sequence[Any]], wait_ms: Optional[int]) -> List[Any]:
    conn: Any = getattr(node, "connection", None)       # a single_connection_client's own connection
    lock = getattr(node, "single_connection_lock", None) if conn is not None else None
    pool = node.connection_pool
    taken = conn is None
    if taken:
        conn = take_connection(pool, str(commands[0][0]))
    if lock is not None:
        lock.acquire()
    try:
        timeout = read_timeout(conn.socket_timeout, wait_ms)
        conn.send_packed_command(conn.pack_commands(commands))
        replies: List[Any] = []
        for _ in commands:
            try:
                replies.append(conn.read_response(timeout=timeout))
            except redis.ResponseError as exc:       # an error reply: the connection is still in step
                replies.append(exc)
        return replies
    except BaseException:
        # a reply may still be on its way: this connection must not serve another command
        conn.disconnect()
        raise
    finally:
        if lock is not None:
            lock.release()
        if taken:
            pool.release(conn)


def call(client: Any, key: str, commands: Sequence[Sequence[Any]], wait_ms: Optional[int]) -> List[Any]:
    """Sends ``commands`` (about ``key``) in one round trip on one connection and returns their replies, an error
    reply as its exception object. ``wait_ms``: how long the slowest of them may wait on the server (0: forever).

    Through a ``RedisCluster``, a MOVED reply (the server ran nothing) updates the client's slot map and the
    commands go to the new owner; any other redirection is returned like an error."""
    for _ in range(3):
        replies = _send(node_client(client, key), commands, wait_ms)
        moved = next((r for r in replies if isinstance(r, MovedError)), None)
        if moved is None or not hasattr(client, "nodes_manager"):
            return replies
        client.nodes_manager.move_slot(moved)
    return replies


def call_one(client: Any, key: str, args: Sequence[Any], wait_ms: Optional[int]) -> Any:
    """One blocking command (see ``call``); an error reply is raised."""
    reply = call(client, key, [args], wait_ms)[0]
    if isinstance(reply, Exception):
        raise reply
    return reply
