"""Fixtures for the integration tests: real redis-server / valkey-server processes with the module loaded.

- `kind`        module-scoped, parametrized over the server kinds available (redis, valkey).
- `server`      one server per test module and kind, shared by the tests of that module; every test uses its own
                key (the `key` fixture), so they do not interfere.
- `r`, `r3`     redis-py clients of `server` (RESP2 / RESP3), decoding replies to str. redis-py 8 speaks RESP3
                unless told otherwise, so `r` asks for protocol 2 explicitly.
- `fresh_server` a server of its own for one test (configs, INFO figures).
- `make_server` a factory for servers with custom module args: `make_server(module_args=["default-lease-ms", 200])`.
"""
import os
import re
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

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


@pytest.fixture
def r(server):
    c = server.client(decode_responses=True, protocol=2)
    yield c
    c.close()


@pytest.fixture
def r3(server):
    c = server.client(decode_responses=True, protocol=3)
    yield c
    c.close()


@pytest.fixture
def key(request):
    """A key no other test uses."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    return f"q:{name}:{uuid.uuid4().hex[:8]}"


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
def fresh_server(make_server):
    return make_server()
