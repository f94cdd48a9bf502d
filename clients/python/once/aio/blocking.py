"""Commands that may wait on the server, sent on a ``redis.asyncio`` connection so that they survive the client's
defaults: the asyncio side of ``once.blocking`` (read that module's docstring for why).

A redis.asyncio connection reads with its ``socket_timeout`` (5 s by default) and its client retries a command whose
read timed out; and given an explicit ``timeout``, ``read_response`` answers None when it runs out, as if the server
had replied nil, while the real reply is still on its way. So each reply is read here without the connection's
timeout (``math.inf``) inside a deadline of our own (the wait plus the connection's timeout as slack, none for an
endless wait), never through the client's Retry; a deadline missed, a broken connection or a cancel drops the
connection and is raised: nothing is sent twice, and no later reply is taken for another command's.
"""
import asyncio
import math
from typing import Any, List, Optional, Sequence

import redis

from ..blocking import read_timeout


async def send(conn: Any, commands: Sequence[Sequence[Any]], wait_ms: Optional[int]) -> List[Any]:
    """Sends ``commands`` in one write on the connection ``conn`` and returns their replies, an error reply as its
    exception object. ``wait_ms``: how long the slowest of them may wait on the server (0: forever; None: not at
    all, so the connection's own timeout applies)."""
    timeout = read_timeout(conn.socket_timeout, wait_ms)
    try:
        await conn.send_packed_command(conn.pack_commands(commands))
        replies: List[Any] = []
        for _ in commands:
            read = conn.read_response(timeout=math.inf)
            try:
                replies.append(await (read if timeout is None else asyncio.wait_for(read, timeout)))
            except redis.ResponseError as exc:      # an error reply: the connection is still in step
                replies.append(exc)
        return replies
    except asyncio.TimeoutError:
        await conn.disconnect()
        raise redis.TimeoutError(f"no reply within {timeout:.1f} s") from None
    except BaseException:
        # a reply may still be on its way: this connection must not serve another command
        await conn.disconnect()
        raise


async def call(client: Any, commands: Sequence[Sequence[Any]], wait_ms: Optional[int]) -> List[Any]:
    """``send`` on one connection of the ``redis.asyncio.Redis`` ``client``: its single connection, or one taken
    from its pool for the round trip."""
    if client.single_connection_client:
        await client.initialize()
        async with client._single_conn_lock:
            return await send(client.connection, commands, wait_ms)
    pool = client.connection_pool
    conn = await pool.get_connection()
    try:
        return await send(conn, commands, wait_ms)
    finally:
        await pool.release(conn)


async def call_one(client: Any, args: Sequence[Any], wait_ms: Optional[int]) -> Any:
    """One command (see ``call``); an error reply is raised."""
    reply = (await call(client, [args], wait_ms))[0]
    if isinstance(reply, Exception):
        raise reply
    return reply
