"""Helpers for the client tests (fixtures live in conftest.py)."""
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

from once import Worker

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
