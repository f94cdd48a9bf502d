"""Fixtures for the Python client's tests: real redis-server / valkey-server processes with the Once module loaded
(tests/harness.py), and the client package from this checkout (installed or not).

- `kind` / `server`   module-scoped, parametrized over the server kinds available (redis, valkey).
- `redis_server`      a redis-server for the module (the worker tests that are too slow to run on every kind).
- `queue`             a queue name no other test uses.
- `client` / `once`   a redis-py client of `server` (bytes replies), once with RESP2 and once with RESP3, and a
                      Once on it for `queue`.
- `rclient` / `ronce` the same on `redis_server`, with redis-py's default protocol.
"""
import os
import re
import sys
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)                                 # clients/python
REPO_ROOT = os.path.dirname(os.path.dirname(PACKAGE_ROOT))           # the repository
sys.path.insert(0, os.path.join(REPO_ROOT, "tests"))                 # harness.py
sys.path.insert(0, PACKAGE_ROOT)                                     # `once`, even when not pip-installed
sys.path.insert(0, HERE)                                             # once_helpers.py

import harness  # noqa: E402

from once import Once  # noqa: E402

KINDS = harness.kinds()


@pytest.fixture(scope="session", autouse=True)
def _module_built():
    missing = harness.missing_prerequisite()
    if missing:
        pytest.exit(missing, returncode=2)


@pytest.fixture(scope="module", params=KINDS)
def kind(request):
    return request.param


@pytest.fixture(scope="module")
def server(kind):
    s = harness.Server(kind)
    yield s
    s.close()


@pytest.fixture(scope="module")
def redis_server():
    s = harness.Server("redis" if "redis" in KINDS else KINDS[0])
    yield s
    s.close()


@pytest.fixture
def queue(request):
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    return f"q:{name}:{uuid.uuid4().hex[:8]}"


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
