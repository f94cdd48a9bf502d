"""Saving never fails silently: when a queue cannot be encoded (here: a panic injected into the encoder with
`once.fault-saves`), the save fails as a whole and the previous file stays, for every way Redis saves."""
import os
import time

import pytest
import redis

from helpers import push, stats, wait_until


def fault(r, n=1):
    r.config_set("once.fault-saves", n)


def test_a_failed_encoding_fails_the_save_and_keeps_the_previous_file(fresh_server):
    s = fresh_server
    r = s.client(decode_responses=True, protocol=2)
    push(r, "q", "kept")
    r.execute_command("SAVE")
    dump = os.path.join(s.dir, "dump.rdb")
    saved = open(dump, "rb").read()
    push(r, "q", "newer")

    fault(r)
    with pytest.raises(redis.ResponseError):
        r.execute_command("SAVE")
    assert open(dump, "rb").read() == saved, "a failed SAVE replaced the file"

    fault(r)
    r.execute_command("BGSAVE")
    wait_until(lambda: r.info("persistence")["rdb_bgsave_in_progress"] == 0, timeout=10, what="bgsave")
    assert r.info("persistence")["rdb_last_bgsave_status"] == "err"
    assert open(dump, "rb").read() == saved

    fault(r)
    with pytest.raises(redis.ResponseError):
        r.execute_command("DEBUG", "RELOAD")          # refuses before it drops anything
    assert stats(r, "q")["ready"] == 2

    # A DUMP made while the encoder fails cannot be restored: nothing wrong is accepted anywhere.
    fault(r)
    payload = s.client(protocol=2).dump("q")
    with pytest.raises(redis.ResponseError):
        r.execute_command("RESTORE", "copy", 0, payload)
    assert r.exists("copy") == 0
    assert r.config_get("once.fault-saves")["once.fault-saves"] == "0"

    # The file left behind is the last good one, and it loads.
    s.stop(kill=True)
    s.start()
    r = s.client(decode_responses=True, protocol=2)
    assert stats(r, "q")["ready"] == 1 and stats(r, "q")["pushed_total"] == 1


def test_a_failed_encoding_fails_the_aof_rewrite_and_the_old_aof_still_loads(make_server):
    s = make_server(extra=["--appendonly", "yes", "--aof-use-rdb-preamble", "no"])
    r = s.client(decode_responses=True, protocol=2)
    push(r, "q", "a")
    push(r, "q", "b", "DELAY", 600000)
    fault(r)
    r.execute_command("BGREWRITEAOF")
    wait_until(lambda: r.info("persistence")["aof_rewrite_in_progress"] == 0
               and r.info("persistence")["aof_rewrite_scheduled"] == 0, timeout=10, what="rewrite")
    assert r.info("persistence")["aof_last_bgrewrite_status"] == "err"
    push(r, "q", "c")
    before = r.execute_command("DEBUG", "DIGEST-VALUE", "q")
    s.restart()
    r = s.client(decode_responses=True, protocol=2)
    assert r.execute_command("DEBUG", "DIGEST-VALUE", "q") == before
    assert (stats(r, "q")["ready"], stats(r, "q")["delayed"]) == (2, 1)
    # Once the encoder works again, a rewrite succeeds and rebuilds the same queue.
    time.sleep(0.1)
    r.execute_command("BGREWRITEAOF")
    wait_until(lambda: r.info("persistence")["aof_rewrite_in_progress"] == 0
               and r.info("persistence")["aof_rewrite_scheduled"] == 0, timeout=10, what="rewrite")
    assert r.info("persistence")["aof_last_bgrewrite_status"] == "ok"
    s.restart()
    r = s.client(decode_responses=True, protocol=2)
    assert r.execute_command("DEBUG", "DIGEST-VALUE", "q") == before
