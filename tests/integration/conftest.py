"""Fixtures for the integration tests. The servers (`kind`, `server`, `make_server`) and `key` come from the
repository's conftest.py, shared with the other suites.

- `r`, `r3`       redis-py clients of `server` (RESP2 / RESP3), decoding replies to str. redis-py 8 speaks RESP3
                  unless told otherwise, so `r` asks for protocol 2 explicitly.
- `fresh_server`  a server of its own for one test (configs, INFO figures).
"""
import pytest


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
def fresh_server(make_server):
    return make_server()
