"""Chromium through deploy/'s nginx in front of two replicas: the browser itself keeps the route
cookie (so its WebSocket reaches the replica that served its page), and when that replica stops
the page reconnects to the other one and keeps working, the step-size slider included, without
an exception or a browser error. The same after one server restarts under an open page.

``tests/test_deploy_nginx.py`` checks the same proxy with the benchmarks' WebSocket client, which
sends the cookie by hand; only a browser shows that the cookie nginx sets (Path, SameSite,
HttpOnly) really comes back on the WebSocket handshake.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import time
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from benchmarks import st_client
from deploy import nginx_conf
from tests.browser.conftest import assert_no_exception, mark_settled, new_context, settle

SLIDER = 'input[type=range][aria-label="fraction of 2/λ_max"]'
EPOCHS = 'input[type=range][aria-label="epochs (passes over the data)"]'
CHART_DATA_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
    .map(el => JSON.stringify((el.data || []).map(t => [t.x, t.y]))).join('|')"""


def _log(d: Path) -> list[tuple[str, str, str]]:
    """(request line, route, upstream) of every request nginx has logged so far."""
    out = []
    for line in (d / "access.log").read_text().splitlines():
        m = re.search(r'"(\w+ \S+) [^"]*" .*route=(\S+) upstream=(.+?) time=', line)
        if m:
            out.append(m.groups())
    return out


WATCH_JS = """() => {
  // record every change of the app root's connection and script states, in order
  const app = document.querySelector('[data-testid="stApp"]');
  window.__bnStates = [];
  new MutationObserver(ms => ms.forEach(m => window.__bnStates.push(app.getAttribute(m.attributeName))))
    .observe(app, {attributes: true, attributeFilter: ["data-test-connection-state", "data-test-script-state"]});
}"""
# the connection was lost and is back (the index of that "CONNECTED" in the record, else -1)
BACK_JS = """() => {
  const s = window.__bnStates, lost = s.findIndex(v => v !== 'CONNECTED' && /^[A-Z_]+$/.test(v));
  return lost < 0 ? -1 : s.indexOf('CONNECTED', lost);
}"""


def _watch_connection(page) -> None:
    """Start recording the page's connection and script states (before the server goes away)."""
    page.evaluate(WATCH_JS)


def _wait_reconnected(page, timeout_s: float = 90) -> None:
    """Wait until the page lost its connection and got it back, then for the rerun of the page
    that the reconnect should bring (up to 20 s: without it, the slider test below fails)."""
    page.wait_for_function(f"() => ({BACK_JS})() >= 0", timeout=timeout_s * 1000)
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_function(f"""() => {{ const s = window.__bnStates, back = ({BACK_JS})();
            return s.indexOf('running', back) >= 0 && s[s.length - 1] === 'notRunning'; }}""", timeout=20_000)
    page.wait_for_timeout(300)
    mark_settled(page)  # the reconnect's rerun is not the run the next key press asks for


def _redraws(page, selector: str, key: str, tries: int) -> bool:
    """Press ``key`` on the slider ``selector`` until the charts' data change (each try waits
    until the run is over and up to 10 s more for the charts); False after ``tries`` presses."""
    for _ in range(tries):
        before = page.evaluate(CHART_DATA_JS)
        page.locator(selector).focus()
        page.locator(selector).press(key)
        settle(page)
        try:
            page.wait_for_function(f"b => ({CHART_DATA_JS})() !== b", arg=before, timeout=10_000)
            return True
        except Exception:  # noqa: BLE001 - Playwright's TimeoutError: try again
            continue
    return False


def test_the_browser_stays_on_its_replica_and_survives_losing_it(browser):
    if nginx_conf.nginx_binary() is None:
        raise AssertionError("Debian's nginx is missing: `bash scripts/run_tests.sh` installs it")
    d = Path(tempfile.mkdtemp(prefix="bnlab-nginx-"))
    ports = [st_client.free_port(), st_client.free_port()]
    logs = [open(d / f"replica-{p}.log", "wb") for p in ports]  # noqa: SIM115 - closed below
    replicas = {p: st_client.launch_server(p, log) for p, log in zip(ports, logs, strict=True)}
    context = new_context(browser, viewport={"width": 1280, "height": 720})
    errors: list[str] = []
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: [log.close() for log in logs])
        stack.callback(lambda: [st_client.stop_server(p) for p in replicas.values() if p.poll() is None])
        stack.callback(context.close)
        for p, proc in replicas.items():
            assert st_client.wait_healthy(f"http://127.0.0.1:{p}", proc=proc), f"replica {p} did not start"
        port = stack.enter_context(nginx_conf.local_proxy([f"127.0.0.1:{p}" for p in ports], d))

        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"http://127.0.0.1:{port}/valley-vs-bowl?c1_frac=0.3&c1_map=0")
        page.locator(SLIDER).wait_for(timeout=90_000)
        settle(page)
        epochs = page.locator(EPOCHS)
        for _ in range(10):  # the epochs slider sits in one of the sidebar's expanders: open them
            if epochs.is_visible():
                break
            closed = page.locator('[data-testid="stSidebar"] details:not([open]) > summary')
            if not closed.count():
                break
            closed.first.click()
            page.wait_for_timeout(200)
        assert epochs.is_visible()
        cookie = next(c for c in context.cookies() if c["name"] == "bnlab_route")
        served = {up for req, route, up in _log(d) if route == cookie["value"]}
        assert len(served) == 1, served  # the page, its scripts and its health checks: one replica
        (home,) = served
        gone = int(home.rsplit(":", 1)[1])
        kept = next(p for p in ports if p != gone)

        # Stop the page's replica: the browser reconnects through nginx, which sends it to the
        # other one (the route's next choice). Then the slider must still redraw the charts.
        _watch_connection(page)
        st_client.stop_server(replicas[gone])
        end = time.monotonic() + 60
        while time.monotonic() < end and not any(
                route == cookie["value"] and up.endswith(f":{kept}") for _, route, up in _log(d)):
            page.wait_for_timeout(250)
        assert any(route == cookie["value"] and up.endswith(f":{kept}") for _, route, up in _log(d)), _log(d)[-5:]
        _wait_reconnected(page)  # and the page's own rerun after the reconnect is over
        # The step-size slider first: it lives in an st.fragment, and Streamlit 1.67 drops a
        # fragment rerun for a fragment the (new) session has never run. The page reruns
        # itself when the browser reconnects (ui.page.rerun_when_reconnected), so the new
        # session knows the fragment by the time the slider moves. Then a control outside it.
        assert _redraws(page, SLIDER, "ArrowRight", tries=1), "after the failover the step-size slider did not redraw"
        assert _redraws(page, EPOCHS, "ArrowLeft", tries=3), "after the failover a full rerun did not redraw the charts"
        assert _redraws(page, SLIDER, "ArrowRight", tries=3), "after a full rerun the step-size slider did not redraw"
        assert_no_exception(page)
        assert not errors, errors
        # nginx logs a WebSocket when it closes: close the page while nginx still runs. The new
        # WebSocket went to the other replica, with the cookie.
        page.close()

        def streams() -> list[str]:
            return [up for req, route, up in _log(d) if req.endswith("/_stcore/stream") and route == cookie["value"]]

        end = time.monotonic() + 10
        while time.monotonic() < end and not any(up.endswith(f":{kept}") for up in streams()):
            time.sleep(0.1)
        assert streams() and streams()[0] == home and streams()[-1].endswith(f":{kept}"), streams()
    for p in ports:
        text = (d / f"replica-{p}.log").read_text(errors="replace")
        assert "Traceback" not in text and "Couldn't find fragment" not in text, text[-3000:]
    shutil.rmtree(d, ignore_errors=True)


def test_after_a_server_restart_the_step_size_slider_redraws_at_once(browser):
    """One server restarted under an open page (a Community Cloud reboot mid-lecture): the
    browser reconnects to a new session, and the first move of the step-size slider redraws."""
    d = Path(tempfile.mkdtemp(prefix="bnlab-restart-"))
    port = st_client.free_port()
    logs = [open(d / f"server-{i}.log", "wb") for i in range(2)]  # noqa: SIM115 - closed below
    proc = st_client.launch_server(port, logs[0])
    context = new_context(browser, viewport={"width": 1280, "height": 720})
    errors: list[str] = []
    try:
        assert st_client.wait_healthy(f"http://127.0.0.1:{port}", proc=proc)
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"http://127.0.0.1:{port}/valley-vs-bowl?c1_frac=0.3&c1_map=0")
        page.locator(SLIDER).wait_for(timeout=90_000)
        settle(page)
        _watch_connection(page)
        st_client.stop_server(proc)
        proc = st_client.launch_server(port, logs[1])
        assert st_client.wait_healthy(f"http://127.0.0.1:{port}", proc=proc)
        _wait_reconnected(page)  # and the page's own rerun after the reconnect is over
        assert _redraws(page, SLIDER, "ArrowRight", tries=1), "after the restart the step-size slider did not redraw"
        assert_no_exception(page)
        assert not errors, errors
    finally:
        context.close()
        st_client.stop_server(proc)
        for log in logs:
            log.close()
    for i in range(2):
        text = (d / f"server-{i}.log").read_text(errors="replace")
        assert not any(w in text for w in ("Traceback", "Warning", "WARNING")), text[-3000:]
    shutil.rmtree(d, ignore_errors=True)
