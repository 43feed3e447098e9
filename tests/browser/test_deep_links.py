"""A teacher's link to any chapter opens that chapter cleanly, even on a freshly started server.

This is the situation of a student opening a shared link after Streamlit Community Cloud has
woken the app: the link is the server's very first request. With a ``pages/`` folder next to
``st.navigation`` Streamlit answered it with a "Page not found" dialog over the right page
(streamlit#9992); the chapters live in ``chapters/`` for that reason (see app.py).
"""

import pytest

from tests.apptest import PAGES
from tests.browser.conftest import assert_no_exception, settle, start_server, stop_server

DEEP_LINKS = [("/bn-step-by-step?c2_gamma=1.5", "2 · Batch norm, step by step"),
              ("/bn-in-network?c3_steps=200", "3 · Batch norm in a network")]


def test_every_non_default_chapter_has_a_deep_link_here():
    non_default = sorted(title for _, title, default in PAGES if not default)
    assert sorted(title for _, title in DEEP_LINKS) == non_default


@pytest.mark.parametrize(("path", "title"), DEEP_LINKS)
def test_first_request_of_a_fresh_server_opens_the_linked_chapter(browser, path, title):
    proc, url = start_server()
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(url + path)
        page.get_by_role("heading", name=title).wait_for(timeout=90_000)
        settle(page)
        assert page.get_by_text("Page not found").count() == 0
        assert page.get_by_role("dialog").count() == 0
        assert path.split("?")[1] in page.url, "the link's settings were dropped"
        assert_no_exception(page)
        context.close()
    finally:
        stop_server(proc)
