"""Key press on a chapter's key slider -> every chart redrawn, timed in Debian's Chromium.

Run from the repository root (either form)::

    .venv/bin/python -m benchmarks.bench_browser [--chapter 1] [--no-back] [--verbose] [--profile]
    .venv/bin/python benchmarks/bench_browser.py --url http://127.0.0.1:8501   # a running server

It starts ``streamlit run app.py`` on 127.0.0.1 (headless, no usage stats, no file watcher)
unless ``--url`` is given, opens each chapter of :data:`CHAPTERS` in headless
``/usr/bin/chromium`` (through Playwright; a downloaded browser is never used) at 1280 x 720,
focuses the chapter's key slider and presses the arrow key once per step across the range in
the table, then (unless ``--no-back``) back again: the first pass asks the server for values it
has not computed yet, the way back for values its caches hold.

What one key press costs, measured in the page (``performance.now()``):

* from the ``keydown`` event,
* until the app's script has finished (the app root's ``data-test-script-state`` went from
  running back to ``notRunning``) **and** the last change to any Plotly chart's DOM
  (``.js-plotly-plot`` and everything inside it, charts Streamlit replaced included, seen by a
  ``MutationObserver``) has been followed by an animation frame, i.e. the browser is free to
  paint the last chart;
* a press counts as settled once nothing has changed in any chart for ``--quiet`` ms (the
  quiet time is not part of the figure).

Per chapter and pass it prints the median and the maximum over the presses (and at which
value the maximum happened), how many of the page's charts were redrawn, and the same clock
until the script finished (what the server and the network add; the rest is the browser).
The load average is printed before and after: on 2 shared cores, figures move with it.
``--profile`` adds where the page's JavaScript spent its time over the presses (Chrome's
sampling CPU profiler, self time per function): a guide to what to cut, not a figure to quote
(the profiler slows the page).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as a file, not only with -m

from benchmarks import st_client

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
#: Launch arguments of /work/shared/tools/shoot.py and tests/browser/conftest.py.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1280, "height": 720}  # what a projector shows


@dataclass(frozen=True)
class Chapter:
    """One chapter's row: where it lives, its key slider, and the range the presses cover."""

    number: int
    path: str  # URL path of the page
    slider: str  # the slider's label (its aria-label)
    query: str  # opens the page with the slider at the start of the range
    presses: int  # ArrowRight presses from there (then as many ArrowLeft back)
    target: str = ""  # the target, printed beside the figures


CHAPTERS = [
    Chapter(1, "/valley-vs-bowl", "fraction of 2/λ_max", "c1_frac=0.01", 19,
            "median <= 300 ms, none over 800 ms (issue 11)"),
    Chapter(2, "/bn-step-by-step", "gamma γ (scale)", "c2_gamma=1", 20),
    Chapter(3, "/bn-in-network", "Learning rate", "c3_lr=0.001", 9),
    Chapter(4, "/curse-of-batch-norm", "Batch size", "c4_batch=2", 6),  # 2 -> 128
    Chapter(5, "/sequence-models", "Batch size", "c5_batch=1", 9),  # 1 -> 10: where BN breaks
]

#: Installed once per page load: timestamps of the script state and of every chart change.
INSTRUMENT_JS = """() => {
  const B = window.__bench = {t0: null, running: null, done: null, lastPlot: 0, lastFrame: 0,
                              mutated: new WeakSet(), before: new WeakSet(), framePending: false};
  const app = document.querySelector('[data-testid="stApp"]');
  document.addEventListener('keydown', e => { if (B.t0 === null) B.t0 = e.timeStamp; }, true);
  const plotOf = n => {
    const el = n.nodeType === 1 ? n : n.parentElement;
    return el && el.closest ? el.closest('.js-plotly-plot') : null;
  };
  new MutationObserver(ms => {
    const now = performance.now();
    let hit = false;
    for (const m of ms) {
      const p = plotOf(m.target);
      if (p) { B.mutated.add(p); hit = true; }
      for (const n of m.addedNodes) {
        if (n.nodeType !== 1) continue;
        const ps = n.matches('.js-plotly-plot') ? [n] : n.querySelectorAll('.js-plotly-plot');
        for (const q of ps) { B.mutated.add(q); hit = true; }
      }
    }
    if (hit && B.t0 !== null) {
      B.lastPlot = now;
      if (!B.framePending) {
        B.framePending = true;
        requestAnimationFrame(() => { B.lastFrame = performance.now(); B.framePending = false; });
      }
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
  new MutationObserver(ms => {
    if (B.t0 === null) return;
    const now = performance.now(), s = app.getAttribute('data-test-script-state');
    // A quick run can go running -> notRunning within one batch of records: a record whose
    // old value is not notRunning saw the run too.
    if (B.running === null && (s !== 'notRunning' || ms.some(m => m.oldValue !== 'notRunning'))) B.running = now;
    if (s === 'notRunning' && B.running !== null && B.done === null) B.done = now;
  }).observe(app, {attributes: true, attributeOldValue: true, attributeFilter: ['data-test-script-state']});
}"""

ARM_JS = """() => {
  const B = window.__bench;
  B.t0 = null; B.running = null; B.done = null; B.lastPlot = 0; B.lastFrame = 0;
  B.mutated = new WeakSet(); B.before = new WeakSet();
  for (const p of document.querySelectorAll('.js-plotly-plot')) B.before.add(p);
}"""

# Settled: the run is over and no chart has changed for `quiet` ms (or the run changed none).
SETTLED_JS = """quiet => {
  const B = window.__bench, now = performance.now();
  // The script state normally flips to running and back; if that was missed, the charts tell.
  if (B.done === null && B.running === null && B.lastPlot > 0) B.done = B.lastPlot;
  if (B.done === null) return false;
  const last = Math.max(B.done, B.lastPlot, B.lastFrame);
  return now - last > quiet && !B.framePending;
}"""

RESULT_JS = """() => {
  const B = window.__bench;
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const redrawn = plots.filter(p => !B.before.has(p) || B.mutated.has(p)).length;
  return {ms: Math.max(B.done, B.lastFrame) - B.t0, script_ms: B.done - B.t0,
          charts: plots.length, redrawn: redrawn};
}"""

STATE_JS = "document.querySelector('[data-testid=\"stApp\"]')?.getAttribute('data-test-script-state')"


def settle_page(page, timeout_s: float = 120) -> None:
    """After a page load: the script has finished and the number of charts held still for 2 s."""
    page.wait_for_function(f"() => {STATE_JS} === 'notRunning'", timeout=timeout_s * 1000)
    end = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < end:
        n = page.locator(".js-plotly-plot").count()
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since > (2 if n else 6):
            break
        page.wait_for_timeout(200)


def open_chapter(page, base: str, ch: Chapter):
    """Open the chapter with its slider at the range's start; return the slider's locator."""
    # Streamlit 1.67 draws a slider as <input type="range" aria-label="<label>">; older ones as a
    # div with role="slider". Its accessible name repeats the label (aria-labelledby), so the
    # exact aria-label is the robust handle.
    slider = page.locator(f':is(input[type=range], [role="slider"])[aria-label="{ch.slider}"]')
    page.goto(f"{base}{ch.path}?{ch.query}")
    try:
        slider.wait_for(timeout=90_000)
    except Exception:  # noqa: BLE001 - Playwright's TimeoutError
        raise SystemExit(f"chapter {ch.number}: {ch.path} shows no slider '{ch.slider}' (edit CHAPTERS)") from None
    settle_page(page)
    if page.get_by_text("Page not found").count():
        raise SystemExit(f"chapter {ch.number}: {ch.path} is not a page of this app (edit CHAPTERS)")
    return slider


def press(page, slider, key: str, quiet_ms: float, timeout_s: float = 60) -> dict | None:
    """One key press on the focused slider; the timings, or None if it started no run."""
    before = slider.get_attribute("aria-valuetext")
    page.evaluate(ARM_JS)
    slider.press(key)
    try:
        page.wait_for_function("() => window.__bench.running !== null || window.__bench.lastPlot > 0",
                               timeout=5000)
    except Exception:  # noqa: BLE001 - Playwright's TimeoutError: the press asked for no rerun
        return None
    page.wait_for_function(SETTLED_JS, arg=quiet_ms, timeout=timeout_s * 1000, polling=50)
    res = page.evaluate(RESULT_JS)
    res.update(before=before, value=slider.get_attribute("aria-valuetext"))
    return res


def summary(label: str, rows: list[dict]) -> str:
    if not rows:
        return f"    {label:<12} no press started a run"
    ms = [r["ms"] for r in rows]
    worst = max(rows, key=lambda r: r["ms"])
    script = statistics.median(r["script_ms"] for r in rows)
    redrawn = min(r["redrawn"] for r in rows), max(r["charts"] for r in rows)
    return (f"    {label:<12} median {statistics.median(ms):6.0f} ms   max {worst['ms']:6.0f} ms "
            f"(to {worst['value']})   over {len(rows)} presses; charts redrawn >= {redrawn[0]}/{redrawn[1]}; "
            f"script finished (median) {script:5.0f} ms")


def cpu_profile_summary(profile: dict, total_ms: float, top: int = 15) -> list[str]:
    """The page's JavaScript self time by function (Chrome's CPU profile), largest first."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    dt = profile.get("timeDeltas", [])
    self_us: dict[str, float] = {}
    for sample, delta in zip(profile.get("samples", []), dt[1:] + [0], strict=False):
        f = nodes[sample]["callFrame"]
        url = f.get("url", "").rsplit("/", 1)[-1]
        name = f"{f.get('functionName') or '(anonymous)'}  {url}:{f.get('lineNumber', 0) + 1}" if url else \
            f"({f.get('functionName') or 'program'})"
        self_us[name] = self_us.get(name, 0.0) + delta
    by_file: dict[str, float] = {}
    for name, us in self_us.items():
        where = name.rsplit("  ", 1)[-1].split(":")[0] if "  " in name else "(browser: layout, style, GC, idle)"
        by_file[where] = by_file.get(where, 0.0) + us

    def line(name: str, us: float) -> str:
        return f"      {us / 1e3:8.0f} ms  {us / 1e3 / max(total_ms, 1e-9) * 100:5.1f} %  {name[:110]}"

    return ([line(n, us) for n, us in sorted(self_us.items(), key=lambda kv: -kv[1])[:top]]
            + ["    by script file:"]
            + [line(n, us) for n, us in sorted(by_file.items(), key=lambda kv: -kv[1])[:6]])


def bench_chapter(browser, base: str, ch: Chapter, back: bool, quiet_ms: float, verbose: bool,
                  profile: bool = False) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        slider = open_chapter(page, base, ch)
        page.evaluate(INSTRUMENT_JS)
        start = slider.get_attribute("aria-valuetext")
        slider.focus()
        passes = [("first visit", "ArrowRight")] + ([("revisited", "ArrowLeft")] if back else [])
        results = {}
        cdp = None
        if profile:  # Chrome's sampling profiler over the presses (it slows the page a little)
            cdp = context.new_cdp_session(page)
            cdp.send("Profiler.enable")
            cdp.send("Profiler.setSamplingInterval", {"interval": 500})
            cdp.send("Profiler.start")
            t_profile = time.perf_counter()
        for label, key in passes:
            rows = []
            for _ in range(ch.presses):
                r = press(page, slider, key, quiet_ms)
                if r is None:
                    print(f"      {key}: no run and no chart change within 5 s "
                          f"(slider at {slider.get_attribute('aria-valuetext')})", flush=True)
                    continue
                rows.append(r)
                if verbose:
                    print(f"      {key:<10} {r['before']:>8} -> {r['value']:<8} {r['ms']:7.0f} ms "
                          f"(script {r['script_ms']:5.0f} ms, charts {r['redrawn']}/{r['charts']})", flush=True)
            results[label] = rows
        profile_lines = []
        if cdp is not None:
            prof = cdp.send("Profiler.stop")["profile"]
            wall = (time.perf_counter() - t_profile) * 1e3
            busy = sum(r["ms"] for rows in results.values() for r in rows)
            profile_lines = [f"    JavaScript self time by function over the presses (wall {wall / 1e3:.1f} s, "
                             f"{busy / 1e3:.1f} s of it inside presses; % of the wall time):",
                             *cpu_profile_summary(prof, wall)]
        exceptions = page.locator('[data-testid="stException"]').count()
    finally:
        context.close()
    end = results["first visit"][-1]["value"] if results["first visit"] else start
    print(f"  chapter {ch.number} ({ch.path}), slider '{ch.slider}' from {start} to {end}"
          + (f"; target: {ch.target}" if ch.target else ""))
    for label, rows in results.items():
        print(summary(label, rows))
    for line in profile_lines:
        print(line)
    if exceptions or errors:
        print(f"    WARNING: {exceptions} exception box(es), browser errors: {errors[:3]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chapter", type=int, action="append", help="only this chapter (repeatable)")
    ap.add_argument("--url", help="a running app to measure instead of starting one (127.0.0.1 only)")
    ap.add_argument("--no-back", dest="back", action="store_false", help="skip the way back (cache hits)")
    ap.add_argument("--quiet", type=float, default=700, help="ms without chart changes that end a press")
    ap.add_argument("--verbose", action="store_true", help="print every press")
    ap.add_argument("--profile", action="store_true",
                    help="also print where the page's JavaScript spent its time (Chrome's CPU profiler)")
    args = ap.parse_args()
    chapters = [c for c in CHAPTERS if not args.chapter or c.number in args.chapter]
    if not chapters:
        raise SystemExit(f"no such chapter; the table has {[c.number for c in CHAPTERS]}")
    from playwright.sync_api import sync_playwright

    print(f"load average {[round(x, 2) for x in os.getloadavg()]} (before); Chromium {CHROMIUM}, "
          f"{VIEWPORT['width']} x {VIEWPORT['height']}; a press ends {args.quiet:g} ms after the last chart change")
    proc = None
    if args.url:
        base = args.url.rstrip("/")
    else:
        proc, port = st_client.start_server()
        base = f"http://{st_client.HOST}:{port}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for ch in chapters:
                    bench_chapter(browser, base, ch, args.back, args.quiet, args.verbose, args.profile)
            finally:
                browser.close()
    finally:
        if proc is not None:
            st_client.stop_server(proc)
    print(f"load average {[round(x, 2) for x in os.getloadavg()]} (after)")


if __name__ == "__main__":
    main()
