"""Fixtures of the client tests. The servers (`kind`, `server`, `redis_server`) and `queue` come from the
repository's conftest.py, shared with the other suites; helpers are in once_helpers.py.

- `client` / `once`   a redis-py client of `server` (bytes replies), once with RESP2 and once with RESP3, and a
                      Once on it for `queue`.
- `rclient` / `ronce` the same on `redis_server`, with redis-py's default protocol.
- `browser` / `page`  headless Debian Chromium driven by Playwright (never a downloaded browser).
"""
import os

import pytest

from once import Once

CHROMIUM = os.environ.get("ONCE_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def client(server, request):
    c = server.client(protocol=request.param)
    yield c
    c.close()


@pytest.fixture
def once(client, queue):
    return Once(client, queue)


@pytest.fixture
def rclient(redis_server):
    c = redis_server.client()
    yield c
    c.close()


@pytest.fixture
def ronce(rclient, queue):
    """A Once on the redis server (for worker tests)."""
    return Once(rclient, queue)


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
