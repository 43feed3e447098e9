"""A teacher's link to any page opens that page cleanly, even on a freshly started server.

This is the situation of a student opening a shared link after Streamlit Community Cloud has
woken the app: the link is the server's very first request. The app uses Streamlit's own
``pages/`` layout without ``st.navigation`` for this reason (see app.py): with
``st.navigation`` next to a ``pages/`` folder the first request showed "Page not found".
Each link gets a server of its own, started for it.
"""

import contextlib

import pytest

from tests.apptest import TITLES
from tests.browser.conftest import (
    assert_no_exception,
    new_context,
    settle,
    start_server,
    stop_server,
)
from ui import course

#: One deep link per chapter, with a setting in its query string (and lecture mode once).
DEEP_LINKS = {
    1: "/valley-vs-bowl?c1_frac=0.9",
    2: "/bn-step-by-step?c2_gamma=1.5",
    3: "/bn-in-network?c3_steps=200&lecture=1",
    4: "/curse-of-batch-norm?c4_batch=4",
    5: "/sequence-models?lecture=1",
}


def test_every_chapter_has_a_deep_link_here():
    assert {c.number for c in course.chapters()} <= set(DEEP_LINKS)


@pytest.mark.parametrize("chapter", [c.number for c in course.chapters()])
def test_first_request_of_a_fresh_server_opens_the_linked_chapter(browser, chapter):
    path = DEEP_LINKS[chapter]
    ch = course.chapter(chapter)
    with fresh_server_page(browser) as (page, url):
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + path)
        page.get_by_role("heading", name=TITLES[ch.file]).wait_for(timeout=90_000)
        settle(page)
        assert page.get_by_text("Page not found").count() == 0
        assert page.get_by_role("dialog").count() == 0
        for pair in path.split("?")[1].split("&"):
            assert pair in page.url, f"the link's setting {pair} was dropped: {page.url}"
        sidebar = page.get_by_test_id("stSidebar")
        for c in course.chapters():  # the shared sidebar, with every chapter's link
            assert sidebar.get_by_role("link", name=c.title).count() == 1, c.title
        assert_no_exception(page)
        assert not errors, errors


@contextlib.contextmanager
def fresh_server_page(browser):
    """A page of a new browser context on a freshly started server: (page, server URL)."""
    proc, url = start_server()
    context = new_context(browser, viewport={"width": 1400, "height": 1000})
    try:
        yield context.new_page(), url
    finally:
        context.close()
        stop_server(proc)


def test_an_unknown_path_says_so_and_opens_the_home_page(browser):
    with fresh_server_page(browser) as (page, url):
        page.goto(url + "/no-such-chapter")
        page.get_by_text("Page not found").wait_for(timeout=90_000)
        page.get_by_role("heading", name="BatchNorm Lab", exact=True).wait_for(timeout=60_000)
        settle(page)
        assert_no_exception(page)


def test_an_old_chapter_one_link_at_the_root_opens_chapter_one(browser):
    """Before the home page, chapter 1 lived at ``/``: such a shared link still opens it."""
    with fresh_server_page(browser) as (page, url):
        page.goto(url + "/?c1_frac=0.9")
        page.get_by_role("heading", name=course.chapter(1).title).wait_for(timeout=90_000)
        settle(page)
        assert "/valley-vs-bowl" in page.url and "c1_frac=0.9" in page.url, page.url
        assert_no_exception(page)
