"""Helpers and fixtures for the tests of the `once` command line, the dashboard and the exporter (test_cli.py,
test_web.py, test_exporter.py). Imported by those files (``from conftest_web import ...``); the server fixtures
(`server`, `redis_server`, `queue`) come from conftest.py.

- `run_cli(url, *args)`   runs the real console script `once` (installed by `pip install -e ./clients/python[all]`;
                          PYTHONPATH points at this checkout, so the code under test is this checkout's)
- `need(r, "ONCE.LIST")`  skips the calling test when the server's module does not have that command yet
- `Served`                a `once web` / `once exporter` process on a port of its own, killed at the end
- `browser`               headless Debian Chromium driven by Playwright (never a downloaded browser)
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from once_helpers import PACKAGE_ROOT, REPO_ROOT, Proc, python_env, wait_until  # noqa: F401

CHROMIUM = os.environ.get("ONCE_CHROMIUM", "/usr/bin/chromium")


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


def _raw(r, *args):
    pool = r.connection_pool
    try:
        conn = pool.get_connection()
    except TypeError:                       # redis-py < 5.3 wants the command name
        conn = pool.get_connection(args[0])
    try:
        conn.send_command(*args)
        return conn.read_response()
    finally:
        pool.release(conn)


def has(r, command):
    reply = _raw(r, "COMMAND", "INFO", command)
    if isinstance(reply, dict):
        return any(reply.values())
    return bool(reply) and reply[0] is not None


def flat(reply):
    if isinstance(reply, dict):
        reply = [x for kv in reply.items() for x in kv]
    if isinstance(reply, (list, tuple)):
        for x in reply:
            yield from flat(x)
    else:
        yield reply


def retry_all_supported(r):
    """Whether ONCE.RETRY takes ALL: its COMMAND DOCS name the token (an older module reads ALL as a job id)."""
    return any(isinstance(x, bytes) and x.upper() == b"ALL" for x in flat(_raw(r, "COMMAND", "DOCS", "ONCE.RETRY")))


def need(r, *commands):
    """Skip the test while the module under test lacks one of `commands` (issue 13's commands land over time)."""
    for c in commands:
        if not has(r, c):
            pytest.skip(f"{c} is not in this module yet (unknown command)")


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


@pytest.fixture(scope="session")
def playwright_instance():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make deps-python)")
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make deps-system does it)")
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_instance):
    b = playwright_instance.chromium.launch(executable_path=CHROMIUM, headless=True,
                                            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
    yield b
    b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(15000)
    yield pg
    ctx.close()


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
