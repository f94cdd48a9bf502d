"""Small helpers shared by the integration tests (no fixtures here: those live in conftest.py)."""
import socket
import time

INSPECT_FIELDS = ["id", "state", "payload", "attempts", "retries", "priority", "created", "due",
                  "lease_deadline", "last_error", "backoff", "lease", "tries", "died", "group", "result", "progress",
                  "finished"]
STATS_FIELDS = ["ready", "delayed", "reserved", "dead", "schedules", "completed", "cancelled", "waiting", "groups",
                "pushed_total", "reserved_total", "acked_total", "nacked_total", "expired_total", "retried_total",
                "dead_total", "dead_dropped_total", "expired_unstarted_total",
                "paused", "retries", "backoff", "lease", "dead_max", "dead_ttl", "events_max", "concurrency", "rate",
                "rate_per", "group_concurrency", "group_rate", "group_rate_per", "keep", "keep_max",
                "wait_p50_ms", "wait_p99_ms",
                "run_p50_ms", "run_p99_ms", "wait_sum_ms", "run_sum_ms"]
# Nil in STATS of a fresh queue: the settings where the module config applies, percentiles with no sample.
NIL_STATS = ("retries", "backoff", "lease", "wait_p50_ms", "wait_p99_ms", "run_p50_ms", "run_p99_ms")
# STATS of a missing key: zero counts and totals, the rest nil.
EMPTY_STATS = {f: None if f in NIL_STATS else 0 for f in STATS_FIELDS}
INFO_FIELDS = ["once_queues", "once_jobs_ready", "once_jobs_delayed", "once_jobs_reserved", "once_jobs_dead",
               "once_jobs_waiting",
               "once_timer_ticks", "once_timer_last_tick_us", "once_timer_max_tick_us", "once_pushed_total",
               "once_acked_total", "once_expired_total", "once_dead_total"]


def wait_until(predicate, timeout=3.0, interval=0.005, what="condition"):
    """Polls `predicate` until it returns a truthy value, which is returned; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value {value!r}")
        time.sleep(interval)


def as_map(reply):
    """A RESP3 map (dict) or a RESP2 flat field/value array as a dict; None stays None."""
    if reply is None or isinstance(reply, dict):
        return reply
    assert isinstance(reply, list) and len(reply) % 2 == 0, f"not a flat map: {reply!r}"
    return {reply[i]: reply[i + 1] for i in range(0, len(reply), 2)}


def keys_in_order(reply):
    if isinstance(reply, dict):
        return list(reply.keys())
    return reply[0::2]


def inspect(r, queue, job_id):
    return as_map(r.execute_command("ONCE.INSPECT", queue, job_id))


def stats(r, queue):
    return as_map(r.execute_command("ONCE.STATS", queue))


def state(r, queue, job_id):
    job = inspect(r, queue, job_id)
    return None if job is None else job["state"]


def push(r, queue, payload="p", *opts):
    return r.execute_command("ONCE.PUSH", queue, payload, *opts)


def reserve(r, queue, *opts):
    return r.execute_command("ONCE.RESERVE", queue, *opts)


def reserve_one(r, queue, *opts):
    """Reserves exactly one job and returns (id, payload, attempt)."""
    got = reserve(r, queue, *opts)
    assert got is not None and len(got) == 1, f"expected one job, got {got!r}"
    job_id, payload, attempt = got[0]
    return job_id, payload, attempt


def server_ms(r):
    """The server's clock in unix ms (the module's `now`)."""
    sec, usec = r.time()
    return sec * 1000 + usec // 1000


def parse_id(job_id):
    ms, seq = job_id.split("-")
    return int(ms), int(seq)


def encode_command(args):
    """One command in RESP2."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class RawClient:
    """A minimal RESP2 client that keeps error replies exactly as the server sent them (redis-py strips 'ERR ')."""

    def __init__(self, port, host="127.0.0.1", timeout=5):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _status(self, text):
        return ("status", text.decode(errors="replace"))

    def _error(self, text):
        return ("error", text.decode(errors="replace"))

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return self._status(rest)
        if kind == b"-":
            return self._error(rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ValueError(f"unexpected RESP line {line!r}")

    def call(self, *args):
        self.sock.sendall(encode_command(args))
        return self._read()

    def error(self, *args):
        """Runs a command that must fail and returns its exact error text (prefix included)."""
        reply = self.call(*args)
        assert isinstance(reply, tuple) and reply[0] == "error", f"{args!r} did not fail: {reply!r}"
        return reply[1]
