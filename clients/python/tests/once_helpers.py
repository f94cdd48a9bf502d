"""Helpers of the client tests (their fixtures are in conftest.py here and in the repository's conftest.py).

- `wait_until`, `server_ms`, `command_calls`     polling and what the server counted
- `running_worker`                               a Worker in a background thread for a `with` block
- `Proc`, `python_env`                           a Python subprocess whose output a test can poll
- `run_cli(url, *args)`, `cli_json`, `cli_env`   the real console script `once` (installed by `pip install -e
                                                 ./clients/python[all]`, so the code under test is this checkout's)
- `need(r, "ONCE.LIST")`                         fails the test when the server's module lacks a command
- `Served`                                       a `once web` / `once exporter` process on a port of its own
- `make_dead`                                    a dead job with a given error
"""
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from once import Worker
from once.server import has_command, has_retry_all

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)
REPO_ROOT = os.path.dirname(os.path.dirname(PACKAGE_ROOT))


def wait_until(predicate, timeout=5.0, interval=0.01, what="condition"):
    """Polls `predicate` until it returns a truthy value, which is returned; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value {value!r}")
        time.sleep(interval)


def server_ms(r):
    sec, usec = r.time()
    return sec * 1000 + usec // 1000


@contextlib.contextmanager
def running_worker(once, execute, error_handler=None, monitor_handler=None, join_timeout=15.0, **options):
    """Runs a Worker in a background thread for the `with` block, then stops it and checks that it ended cleanly."""
    options.setdefault("block_ms", 1000)
    w = Worker(once, execute, error_handler, monitor_handler, **options).start()
    try:
        yield w
    finally:
        w.stop()
        ended = w.join(join_timeout)
    assert ended, "the worker did not stop"
    assert w.error is None, f"the worker ended with {w.error!r}"


def command_calls(r, name):
    """How many times the server ran command `name` (INFO commandstats), e.g. 'once.reserve'. The name is matched
    without regard to case: the server lists a module command as the module registered it."""
    want = f"cmdstat_{name}".lower()
    entry = next((v for k, v in r.info("commandstats").items() if k.lower() == want), None)
    return 0 if entry is None else int(entry["calls"])


def python_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = PACKAGE_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Proc:
    """A Python subprocess whose output goes to a file, so a test can poll what it printed so far."""

    def __init__(self, args, env=None, cwd=None):
        self.out_path = os.path.join(
            os.environ.get("TMPDIR", "/tmp"), f"once-test-{os.getpid()}-{threading.get_ident()}-{time.time_ns()}.out")
        self.out = open(self.out_path, "w+b")
        # Ctrl-C as a user's terminal gives it: a run started in the background (`cmd &` without job control)
        # inherits SIGINT ignored, and the examples would never see the KeyboardInterrupt the tests send.
        self.proc = subprocess.Popen([sys.executable] + list(args), stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env or python_env(), cwd=cwd or REPO_ROOT,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def output(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")

    def wait_output(self, text, timeout=10.0):
        def seen():
            if self.proc.poll() is not None and text not in self.output():
                raise AssertionError(f"process exited with {self.proc.returncode} before printing {text!r}:\n"
                                     f"{self.output()}")
            return text in self.output()
        return wait_until(seen, timeout=timeout, what=f"output {text!r}")

    def wait(self, timeout=15.0):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"process did not exit within {timeout}s; output:\n{self.output()}")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()
        try:
            os.remove(self.out_path)
        except OSError:
            pass


def once_script():
    """The console script `once` next to this Python (or on PATH)."""
    here = os.path.join(os.path.dirname(sys.executable), "once")
    if os.path.exists(here):
        return here
    return shutil.which("once")


def cli_env(url=None, extra=None):
    env = python_env()
    env["COLUMNS"] = "250"
    env.pop("ONCE_URL", None)
    if url:
        env["ONCE_URL"] = url
    env.update(extra or {})
    return env


def run_cli(url, *args, env=None, timeout=60, input=None, use_env_url=False):
    """Runs `once [--url URL] ARGS...`; returns the CompletedProcess (text)."""
    script = once_script()
    if script is None:
        pytest.fail("the console script `once` is not installed: pip install -e './clients/python[all]' "
                    "(make deps-python does it)")
    argv = [script]
    if url and not use_env_url:
        argv += ["--url", url]
    argv += [str(a) for a in args]
    return subprocess.run(argv, env=cli_env(url if use_env_url else None, env), capture_output=True, text=True,
                          timeout=timeout, input=input, cwd=REPO_ROOT)


def cli_json(url, *args, **kw):
    p = run_cli(url, *args, "--json", **kw)
    assert p.returncode == 0, f"once {' '.join(map(str, args))} exited {p.returncode}: {p.stderr}{p.stdout}"
    return json.loads(p.stdout)


def url_of(server, db=0):
    return f"redis://127.0.0.1:{server.port}/{db}"


def has(r, command):
    """Whether the server under test knows `command` (COMMAND INFO, as the package asks it)."""
    return has_command(r, command)


def retry_all_supported(r):
    """Whether ONCE.RETRY takes ALL (its COMMAND DOCS name the token)."""
    return has_retry_all(r)


def need(r, *commands):
    """Fails the calling test when the server's module lacks one of `commands`: this repository's module has them
    all, so a missing one means a stale build, never a reason to skip."""
    for c in commands:
        if not has(r, c):
            pytest.fail(f"{c} is unknown to the server under test, yet this repository's module has it: "
                        f"rebuild target/release/libonce.so (cargo build --release)")


class Served:
    """A `once web` or `once exporter` process started with --port 0; `base` is its URL once it listens."""

    def __init__(self, url, *args, env=None):
        script = once_script()
        if script is None:
            pytest.fail("the console script `once` is not installed: pip install -e './clients/python[all]'")
        self.proc = _ScriptProc([script, "--url", url] + [str(a) for a in args], env=cli_env(None, env))
        try:
            self.proc.wait_output("serving http://", timeout=20)
            m = re.search(r"serving (http://[^\s/]+)", self.proc.output())
            assert m, self.proc.output()
        except BaseException:
            self.close()
            raise
        self.base = m.group(1)

    def get(self, path, headers=None):
        req = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                return resp.status, resp.read().decode("utf-8", errors="replace"), dict(resp.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", errors="replace"), dict(e.headers)

    def post(self, path, data, headers=None):
        from urllib.parse import urlencode
        body = urlencode(data, doseq=True).encode()
        req = urllib.request.Request(self.base + path, data=body, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                return resp.status, resp.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", errors="replace")

    def close(self):
        p = self.proc.proc
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.proc.close()


class _ScriptProc(Proc):
    """once_helpers.Proc runs `python ARGS`; this one runs a console script (ARGS[0]) itself."""

    def __init__(self, argv, env=None):
        import threading
        self.out_path = os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                     f"once-test-{os.getpid()}-{threading.get_ident()}-{time.time_ns()}.out")
        self.out = open(self.out_path, "w+b")
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env or python_env(), cwd=REPO_ROOT)


def make_dead(r, queue, payload="doomed", error="boom", job_id=None):
    """Pushes a job with RETRIES 0, reserves it and fails it with `error`: a dead job. Returns its id."""
    args = ["ONCE.PUSH", queue, payload, "RETRIES", 0, "PRIORITY", 1000000]
    if job_id:
        args += ["ID", job_id]
    jid = r.execute_command(*args)
    jid = jid.decode() if isinstance(jid, bytes) else jid
    got = r.execute_command("ONCE.RESERVE", queue, "COUNT", 1, "LEASE", 60000)
    assert got and (got[0][0].decode() if isinstance(got[0][0], bytes) else got[0][0]) == jid, got
    assert r.execute_command("ONCE.NACK", queue, jid, "ATTEMPT", 1, "ERROR", error) == 1
    return jid
