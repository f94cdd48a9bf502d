"""The dashboard's search box on a job list, in headless Chromium: the server searches (ONCE.LIST ... MATCH) ids,
payloads and last errors; a page may hold fewer jobs than asked, and the next page searches on. The box is a GET
form submitted with Enter (no button: a read-only dashboard shows no button at all)."""
import pytest

from once import Once
from once_helpers import Served, url_of

pytest.importorskip("flask", reason="flask is not installed (pip install './clients/python[all]')")


@pytest.fixture(scope="module")
def server(redis_server):
    return redis_server


@pytest.fixture(scope="module")
def web(server):
    w = Served(url_of(server), "web", "--port", 0, "--interval", 0.5)
    yield w
    w.close()


@pytest.fixture
def r(server):
    c = server.client()
    yield c
    c.close()


def shown_ids(page):
    return [a.inner_text() for a in page.locator("#jobs a.job-link").all()]


def test_search_box_finds_a_payload_among_many_pages(web, r, queue, page):
    once = Once(r, queue)
    once.push_many([f"order {i}" for i in range(400)])
    needle = once.push("invoice for <ada@example.com>")
    page.goto(f"{web.base}/jobs?queue={queue}&state=ready&count=25")
    assert len(shown_ids(page)) == 25
    page.fill("#match", "ada@")                               # a word: found anywhere
    page.press("#match", "Enter")
    page.wait_for_url("**match=ada%40**")
    # 25 asked, so a call examines 250 jobs: the first stretch holds none, the next page searches on
    assert shown_ids(page) == []
    assert "matching “ada@” in this stretch: the next page searches on" in page.locator("td.empty").inner_text()
    page.click("#next-page")
    page.wait_for_selector("#jobs a.job-link")
    assert shown_ids(page) == [needle]
    assert page.locator("td.payload-cell").inner_text() == "invoice for <ada@example.com>"
    assert page.locator("#next-page").count() == 0
    assert page.input_value("#match") == "ada@"               # the box keeps the search
    page.click("#clear-search")
    page.wait_for_selector("#jobs a.job-link >> nth=24")
    assert len(shown_ids(page)) == 25 and page.input_value("#match") == ""


def test_search_a_glob_over_last_errors_and_keep_it_across_tabs(web, r, queue, page):
    once = Once(r, queue)
    ids = once.push_many(["a", "b", "c"], retries=0)
    jobs = once.reserve(3)
    for j, error in zip(jobs, ["smtp 550: no such user", "smtp 421: later", "smtp 551: moved"]):
        once.nack(j, error=error)
    once.push("smtp 550 in a ready payload")
    page.goto(f"{web.base}/jobs?queue={queue}&state=dead")
    page.fill("#match", "smtp 55?:*")
    page.press("#match", "Enter")
    page.wait_for_url("**match=smtp**")
    assert sorted(shown_ids(page)) == sorted([ids[0], ids[2]])
    page.click("#tab-ready")
    page.wait_for_url("**state=ready**")
    assert page.input_value("#match") == "smtp 55?:*" and shown_ids(page) == []   # the glob is taken as typed
    page.fill("#match", "smtp 550")
    page.press("#match", "Enter")
    page.wait_for_selector("#jobs a.job-link")
    assert len(shown_ids(page)) == 1
