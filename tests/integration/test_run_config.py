"""`make run` starts redis-server with ./redis.conf: that file must load the module as it stands."""
import os
import shutil
import subprocess

import redis

import harness
from helpers import wait_until


def test_redis_conf_loads_the_module():
    os.makedirs(os.path.join(harness.ROOT, "data"), exist_ok=True)
    port = harness.free_port()
    # Same file, another port, nothing written to ./data (a `make run` may be using it).
    proc = subprocess.Popen(
        [shutil.which("redis-server"), "redis.conf", "--port", str(port), "--appendonly", "no", "--save", ""],
        cwd=harness.ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        r = redis.Redis(port=port, decode_responses=True, protocol=2)

        def up():
            try:
                return r.ping()
            except redis.ConnectionError:
                assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-2000:]
                return False

        wait_until(up, timeout=10, what="redis-server with redis.conf")
        assert any(m["name"] == "once" for m in r.module_list())
        job = r.execute_command("ONCE.PUSH", "conf-check", "hello")
        assert r.execute_command("ONCE.RESERVE", "conf-check") == [[job, "hello", 1]]
    finally:
        proc.kill()
        proc.wait()
