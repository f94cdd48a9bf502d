"""`once list Q STATE --match PATTERN` (ONCE.LIST ... MATCH: the server filters, a page may hold fewer than --count
and the walk goes on by cursor) and `once push` (ONCE.BULK)."""
import pytest

from once import Once
from once_helpers import cli_json, run_cli, url_of


@pytest.fixture
def r(server):
    c = server.client()
    yield c
    c.close()


def test_list_match_finds_jobs_by_payload_id_and_error_across_pages(server, r, queue):
    once = Once(r, queue)
    once.push_many([f"order {i}" for i in range(500)])
    needle = once.push("invoice for ada@example.com")
    once.push("x", id="ada-special")
    url = url_of(server)
    found = cli_json(url, "list", queue, "ready", "--match", "*ada*", "--all", "--payloads")
    assert [j["id"] for j in found["jobs"]] == [needle, "ada-special"] and found["cursor"] == "0"
    assert found["jobs"][0]["payload"] == "invoice for ada@example.com"

    # one page: the server examines at most 10 x COUNT jobs, so the first page holds none and says how to go on
    p = run_cli(url, "list", queue, "ready", "--match", "*ada*", "--count", "5")
    assert p.returncode == 0, p.stderr
    assert "0 matching job(s) in this stretch; the search goes on" in p.stdout
    assert "--match '*ada*'" in p.stdout and "--cursor" in p.stdout

    cursor, seen, pages = "0", [], 0
    while True:
        page = cli_json(url, "list", queue, "ready", "--match", "*ada*", "--count", "5", "--cursor", cursor)
        seen += [j["id"] for j in page["jobs"]]
        cursor, pages = page["cursor"], pages + 1
        if cursor == "0":
            break
    assert seen == [needle, "ada-special"] and pages >= 10


def test_list_match_on_last_error(server, r, queue):
    once = Once(r, queue)
    once.push_many(["a", "b", "c"], retries=0)
    jobs = once.reserve(3)
    once.nack(jobs[0], error="smtp 550: no such user")
    once.nack(jobs[1], error="smtp 421: try later")
    once.nack(jobs[2], error="smtp 550: mailbox full")
    found = cli_json(url_of(server), "list", queue, "dead", "--match", "smtp 550*", "--all")
    assert sorted(j["id"] for j in found["jobs"]) == sorted([jobs[0].id, jobs[2].id])


def test_push_sends_payloads_and_a_file_in_order(server, r, queue, tmp_path):
    url = url_of(server)
    p = run_cli(url, "push", queue, "one", "two", "--priority", "3")
    assert p.returncode == 0, p.stderr
    ids = p.stdout.split()
    assert len(ids) == 2
    f = tmp_path / "jobs.txt"
    f.write_text("three\n\nfour\n")
    more = cli_json(url, "push", queue, "--file", str(f))["ids"]
    assert len(more) == 2
    jobs = Once(r, queue, decode=True).reserve(4)
    assert [(j.id, j.payload) for j in jobs] == list(zip(ids + more, ["one", "two", "three", "four"]))
    assert cli_json(url, "push", queue, "--file", "-", input="five\n")["ids"]


def test_push_bad_usage_says_so_in_one_line(server, queue, tmp_path):
    url = url_of(server)
    for args, text in ((["push", queue], "nothing to push"),
                       (["push", queue, "a", "--file", str(tmp_path / "f")], "give payloads or --file, not both"),
                       (["push", queue, "--file", str(tmp_path / "missing")], "cannot read")):
        p = run_cli(url, *args)
        assert p.returncode == 2 and text in p.stderr and p.stderr.count("\n") == 1, (args, p.stderr)
    p = run_cli(url, "push", queue, "a", "--retries", "-1")
    assert p.returncode == 1 and p.stderr.startswith("once: ") and "Traceback" not in p.stderr, p.stderr
