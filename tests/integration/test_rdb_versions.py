"""Every older RDB encoding stays loadable: tests/data/queue-v1.rdb was saved by the module at encoding
version 1 (see tests/data/README.md); today's module (version 2) must load it exactly and save it anew."""
import os
import shutil
import tempfile

import harness
from helpers import inspect, stats

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "queue-v1.rdb")


def test_a_v1_rdb_loads_with_every_field_and_saves_again_as_v2(kind):
    d = tempfile.mkdtemp(prefix="once-v1-")
    shutil.copy(DATA, os.path.join(d, "dump.rdb"))
    # Loaded as a replica of nobody, so the timer leaves the file's leases and due times as they were saved.
    s = harness.Server(kind, dir=d, extra=["--replicaof", "127.0.0.1", str(harness.free_port())])
    try:
        r = s.client(decode_responses=True, protocol=2)
        st = stats(r, "v1q")
        assert {k: st[k] for k in ("ready", "delayed", "reserved", "dead", "schedules")} == \
            {"ready": 2, "delayed": 1, "reserved": 1, "dead": 1, "schedules": 1}, st
        assert (st["pushed_total"], st["reserved_total"], st["nacked_total"], st["dead_total"]) == (5, 2, 1, 1)
        r1 = inspect(r, "v1q", "r1")
        assert (r1["state"], r1["attempts"], r1["tries"], r1["priority"], r1["lease_deadline"]) == \
            ("reserved", 1, 1, 9, 1796719033867), r1
        d1 = inspect(r, "v1q", "d1")
        assert (d1["state"], d1["due"], d1["retries"], d1["backoff"], d1["lease"]) == \
            ("delayed", 4102444800000, 7, 250, 9000), d1
        x1 = inspect(r, "v1q", "x1")
        assert (x1["state"], x1["last_error"], x1["retries"]) == ("dead", "boom: v1", 0), x1
        assert inspect(r, "v1q", "a")["priority"] == 5
        sched = r.execute_command("ONCE.SCHEDULES", "v1q")[0]
        fields = dict(zip(sched[0::2], sched[1::2]))
        assert (fields["spec"], fields["tz"], fields["next_fire"]) == ("0 3 * * *", "Europe/Paris", 1796176800000)
        before = r.execute_command("DEBUG", "DIGEST-VALUE", "v1q")
        # Saved again (now as version 2) and loaded back: the same queue.
        r.execute_command("SAVE")
        s.restart()
        r = s.client(decode_responses=True, protocol=2)
        assert r.execute_command("DEBUG", "DIGEST-VALUE", "v1q") == before
        assert stats(r, "v1q") == st
    finally:
        s.close()
