"""The fixtures every Python suite shares (tests/integration, tests/chaos, tests/cluster, clients/python/tests):
real redis-server / valkey-server processes with the module loaded, started by tests/harness.py.

- `kind`          module-scoped, parametrized over the server kinds available (redis, valkey).
- `server`        one server per test module and kind, shared by that module's tests (each uses keys of its own).
- `redis_server`  a redis-server (else the first kind), for the tests too slow to run on every kind.
- `make_server`   a factory for servers of `kind` with module arguments or config of their own:
                  ``make_server(module_args=["default-lease-ms", 200])``; closed after the test.
- `key` / `queue` a key no other test uses.

The session stops at once, with what to do, when the module is not built or a server binary is missing.
"""
import re
import uuid

import harness
import pytest

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
def make_server(kind):
    started = []

    def make(module_args=(), extra=()):
        s = harness.Server(kind, module_args=module_args, extra=extra)
        started.append(s)
        return s

    yield make
    for s in started:
        s.close()


@pytest.fixture
def key(request):
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    return f"q:{name}:{uuid.uuid4().hex[:8]}"


@pytest.fixture
def queue(key):
    return key
