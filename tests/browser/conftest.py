"""Browser-test fixtures: one ``streamlit run`` on 127.0.0.1 and Debian's Chromium via Playwright.

The browser is always ``/usr/bin/chromium`` (installed by ``.ci/run`` when missing); a
downloaded Playwright browser is never used. Every test in this folder is marked ``browser``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from benchmarks import st_client

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


def start_server() -> tuple[subprocess.Popen, str]:
    """Start ``streamlit run app.py`` headless on a free port of 127.0.0.1; return (process, URL).

    The launcher of the benchmarks (:func:`benchmarks.st_client.start_server`: the same flags,
    the same health check), with the output piped so :func:`stop_server` can check the log.
    """
    try:
        proc, port = st_client.start_server(log=subprocess.PIPE)
    except RuntimeError as err:
        pytest.fail(str(err))
    return proc, f"http://{st_client.HOST}:{port}"


def stop_server(proc: subprocess.Popen) -> str:
    """Stop the server; return its log, which must hold no traceback and no numpy warning."""
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    log = out.decode(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert "RuntimeWarning" not in log, log[-3000:]
    return log


@pytest.fixture(scope="session")
def app_url():
    """One server for the browser tests of a session; its log is checked when it stops."""
    proc, url = start_server()
    yield url
    stop_server(proc)


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (bash .ci/run does).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


# Counts the runs Streamlit starts (the app root's script state leaving ``notRunning``) in
# ``window.__bnRuns``, from the page's first script on, so :func:`settle` knows whether the run
# an action requested has already come and gone instead of waiting to see it start.
RUN_COUNTER_JS = """
(() => {
  window.__bnRuns = 0;
  // A record carries the value it replaced; its own new value is the next record's old value
  // for the same element (or the attribute now). So a batch holding both "running" and
  // "notRunning" still counts its run, and a value set again unchanged counts nothing.
  const idle = (v) => v === null || v === 'notRunning' || v === 'initial';
  new MutationObserver((records) => {
    records.forEach((r, i) => {
      if (r.target.getAttribute('data-testid') !== 'stApp') return;
      const later = records.slice(i + 1).find((q) => q.target === r.target);
      const now = later ? later.oldValue : r.target.getAttribute('data-test-script-state');
      if (idle(r.oldValue) && !idle(now)) window.__bnRuns++;
    });
  }).observe(document, {subtree: true, attributes: true, attributeOldValue: true,
                        attributeFilter: ['data-test-script-state']});
})();
"""


def new_context(browser, **kwargs):
    """A browser context whose pages count Streamlit's runs (see :func:`settle`)."""
    context = browser.new_context(**kwargs)
    context.add_init_script(RUN_COUNTER_JS)
    return context


@pytest.fixture()
def page(browser):
    """A fresh page; fails the test if the page raised a JavaScript error."""
    context = new_context(browser, viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def settle(page, timeout_s: float = 120) -> None:
    """Wait until Streamlit has finished the run that the last action started.

    The app root carries ``data-test-script-state`` (``initial``, ``rerunRequested``,
    ``running``, ``notRunning``). First wait (up to 2 s) for a run to start, so a rerun that
    a key press has just requested is not missed on a busy machine: on a page of
    :func:`new_context`, one that started since the last ``settle`` counts even if it is
    already over (so a quick run costs no wait); elsewhere the state must be seen leaving
    ``notRunning``. Then wait for ``notRunning``, for the elements' code to have loaded (up to
    20 s, :data:`NO_SKELETON_JS`), and for every live chart to have drawn the figure it was
    sent last (:data:`CHARTS_DRAWN_JS`).
    """
    state = "document.querySelector('[data-testid=\"stApp\"]')?.getAttribute('data-test-script-state')"
    counted = "typeof window.__bnRuns === 'number'"
    started = f"(({counted}) && window.__bnRuns > (window.__bnSettledRuns || 0)) || {state} !== 'notRunning'"
    try:
        page.wait_for_function(f"() => {started}", timeout=2000)
    except PlaywrightTimeout:
        pass
    page.wait_for_function(
        f"() => {state} === 'notRunning' && (({counted}) ? (window.__bnSettledRuns = window.__bnRuns, true) : true)",
        timeout=timeout_s * 1000)
    try:  # the elements' code loaded (a fresh page shows skeletons until then)
        page.wait_for_function(NO_SKELETON_JS, timeout=20_000)
    except PlaywrightTimeout:
        pass
    page.wait_for_function(CHARTS_DRAWN_JS, timeout=60_000)
    failed = page.evaluate("() => [...document.querySelectorAll('.bn-live')].map(b => b.__bnError).filter(Boolean)")
    assert not failed, f"a chart could not be drawn: {failed}"
    page.wait_for_timeout(300)
    mark_settled(page)  # a run that started during the waits above belongs to this action


def mark_settled(page) -> None:
    """Count every run so far as waited for: the next :func:`settle` waits for a newer one.

    For a helper that waits for runs by other means (a reconnect's rerun) before an action."""
    page.evaluate("""() => { const app = document.querySelector('[data-testid="stApp"]');
      if (typeof window.__bnRuns === 'number' && app && app.getAttribute('data-test-script-state') === 'notRunning')
        window.__bnSettledRuns = window.__bnRuns; }""")


#: No element is still a skeleton: Streamlit shows one while an element's code is loading, and
#: the run can be over by then (the charts of a fresh page appear after "notRunning").
NO_SKELETON_JS = """() => !document.querySelector('[data-testid="stElementContainer"] > [data-testid="stSkeleton"]')"""
#: Every chart element (a ``ui.live_chart`` component) has drawn the figure it was sent last, or
#: failed to (``__bnError``: :func:`settle` then fails the test with the chart's message).
CHARTS_DRAWN_JS = """() => [...document.querySelectorAll('[data-testid="stBidiComponentRegular"]')].every(c => {
  const box = c.querySelector(':scope > .bn-live');
  return !!box && (box.__bnDrawn === box.__bnText || !!box.__bnError); })"""


def open_chapter(page, url: str, heading: str, slider: str, ready_js: str, last_text: str | None = None) -> None:
    """Open ``url`` and wait until the chapter ``heading`` has drawn its ``slider``, its last
    element ``last_text`` if given (the whole script has run; the status widget can show late),
    and until the JavaScript expression ``ready_js`` (a function) returns something non-null."""
    page.goto(url)
    page.get_by_role("heading", name=heading).wait_for(timeout=60_000)
    page.get_by_role("slider", name=slider).wait_for(timeout=60_000)
    if last_text is not None:
        page.get_by_text(last_text).wait_for(timeout=90_000)
    settle(page)
    page.wait_for_function(f"({ready_js})() !== null", timeout=60_000)


def assert_no_exception(page) -> None:
    """No Streamlit exception box (a traceback shown to the user) on the page."""
    boxes = page.locator('[data-testid="stException"]').all_inner_texts()
    assert not boxes, f"exception shown on the page: {boxes}"
