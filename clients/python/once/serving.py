"""How the ``once`` subcommands end: their exit codes, the error that carries one, and how a long-running one
(``once web``, ``once exporter``) serves until it is stopped. Imports nothing of the package, so the dashboard
and the exporter need not import the command line."""
import signal
import threading
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_CONNECT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class CliError(Exception):
    """A subcommand's failure: its one-line message goes to stderr and ``code`` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAIL):
        super().__init__(message)
        self.code = code


def serve_until_stopped(server: Any, poll_s: float) -> None:
    """Blocks until SIGTERM or Ctrl-C, then shuts ``server`` (an http.server / werkzeug server) down."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(poll_s):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
