"""What the server's refusals mean for a Once queue, said plainly."""
import contextlib
from typing import Any, Iterator

import redis

TYPE_NAME = "OnceQueue"            # the module's data type name, as TYPE and SCAN ... TYPE give it


class WrongTypeError(redis.ResponseError):
    """The queue's key holds another Redis type (a list a producer RPUSHed to, say), not a Once queue.

    ``key``: the key; ``held``: the type it holds (``"list"``, ...), or None when TYPE could not be read."""

    def __init__(self, key: str, held: Any):
        self.key, self.held = key, held
        what = f"a {held}" if held else "another type"
        super().__init__(f"key {key!r} holds {what}, not a Once queue: push jobs with ONCE.PUSH (Once.push)")


def is_wrong_type(exc: BaseException) -> bool:
    return isinstance(exc, redis.ResponseError) and str(exc).startswith("WRONGTYPE")


def is_no_permission(exc: BaseException) -> bool:
    """An ACL refusal (NOPERM): of the command, or of the key for this user."""
    return isinstance(exc, redis.exceptions.NoPermissionError) or (
        isinstance(exc, redis.ResponseError) and str(exc).startswith("NOPERM"))


def wrong_type_error(r: Any, key: str) -> WrongTypeError:
    """The WrongTypeError for ``key``, naming the type it holds (asked with TYPE)."""
    try:
        held = r.type(key)
    except redis.RedisError:                   # TYPE not permitted or the server gone: say less
        held = None
    if isinstance(held, bytes):
        held = held.decode("utf-8", errors="replace")
    if held in (TYPE_NAME, "none"):            # it changed since: the message would be wrong
        held = None
    return WrongTypeError(key, held)


@contextlib.contextmanager
def naming_wrong_type(r: Any, key: str) -> Iterator[None]:
    """Turns a WRONGTYPE reply to a command on ``key`` into a WrongTypeError that names the type the key holds."""
    try:
        yield
    except redis.ResponseError as exc:
        if isinstance(exc, WrongTypeError) or not is_wrong_type(exc):
            raise
        raise wrong_type_error(r, key) from None
