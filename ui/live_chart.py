"""Plotly charts that update in place: what a slider move redraws in about 100 ms.

Why not ``st.plotly_chart``: in Streamlit 1.67 its element id is derived from the figure itself
and its frontend reads the figure only when the element is created, so every changed figure
is thrown away and drawn again with Plotly's ``newPlot``: four charts per step-size move in
chapter 1, 300-500 ms of the browser's time (``benchmarks/bench_browser.py``). A ``key`` does
not help: the frontend ignores a new figure under an old id.

This module draws the same figure spec with a Streamlit *components v2* element (no iframe,
mounted in the page) whose identity is its ``key``, so a rerun hands the element the new spec
and its JavaScript calls ``Plotly.react``: Plotly diffs the figures and redraws in place.

* **Nothing from outside.** Plotly.js is the ``plotly.min.js`` the ``plotly`` Python package
  ships (the same Plotly.js version that package validates figures for), served by this
  Streamlit server from the package's own folder through a components-v1 file route
  (``/component/<name>/plotly.min.js``); the page loads it once, on the first live chart.
* **Same figures, same tests.** The data is the spec's JSON (:func:`figure_json`: the same
  numbers ``st.plotly_chart`` would send); :func:`spec_of` reads it back for AppTest
  (``tests/apptest.py`` reads both kinds of chart).
* **Only what changed is redrawn.** ``Plotly.react`` recomputes a trace it has not drawn before
  as an object, and redraws the whole chart for a new layout template object (equal or not) or
  a different config (a new full-screen button's function was enough). The element hands back
  the trace, template and config objects of the previous draw wherever the new figure's are
  equal (not a trace that animation frames write into, nor one hidden by a legend click), so
  that a move of the stability map's star (a layout shape) is all Plotly redraws. Measured in
  Chromium on chapter 1 (/tmp probe wrapping ``Plotly.react``, median of 10 key presses): the
  map 40 -> 9 ms, the convergence chart 40 -> 5 ms.
* **What the browser gets.** A ``div.js-plotly-plot`` inside ``[data-testid="stLiveChart"]``,
  Plotly's own mode bar (PNG download, zoom, reset; no "share" button, which would upload the
  chart to Plotly's cloud) plus a full-screen button (the chart then fills the screen), and
  responsive width. A figure with animation frames is updated with ``Plotly.react`` too, which
  in plotly.js 4.1 replaces the frames and keeps one set of the step slider's listeners
  (``tests/browser/test_live_chart.py`` checks both, across updates that change the number of
  frames). This element used to draw such figures anew (``purge`` + ``newPlot``), after an
  update had once kept the old frames; that cost about 30 ms per landscape and key press in
  chapter 1 (/tmp probe: 77 ms against 45 ms). While ▶ play is animating, the chart is drawn
  anew instead. A rejected animation promise (pause, or play while playing) is caught, not
  reported as a page error.
"""

from __future__ import annotations

import contextlib
import json
import weakref
from pathlib import Path

import plotly
import plotly.io as pio
import streamlit as st
from streamlit.components.v1 import declare_component

try:
    import orjson
except ImportError:  # pragma: no cover - pinned in requirements.txt
    orjson = None

#: The folder of the plotly package that holds ``plotly.min.js``.
PLOTLY_JS_DIR = Path(plotly.__file__).resolve().parent / "package_data"
#: The file route's component name (components v1 prefix it with this module's name).
ASSET_NAME = "plotlyjs"
ASSET_ROUTE = f"component/{__name__}.{ASSET_NAME}/plotly.min.js"

# The element's JavaScript, an ES module. Streamlit imports it once per page and calls its default
# export when the element mounts and again whenever the element's data (the figure) changes,
# always with the same parentElement; the cleanup it returns runs when the element goes away.
JS = r"""
const SRC = "@ROUTE@";
// Where this server's routes start: beside Streamlit's own main script (".../static/js/index.*.js"),
// so that a deployment under a path prefix (server.baseUrlPath, a proxy) finds the file too.
function assetUrl() {
  const main = [...document.scripts].map(s => s.src).find(u => /\/static\/js\/index\.[^/]*\.js/.test(u));
  return main ? main.replace(/static\/js\/index\.[^/]*\.js.*$/, SRC) : new URL(SRC, document.baseURI).href;
}
function loadPlotly() {
  if (!window.__bnPlotly) {
    window.__bnPlotly = window.Plotly ? Promise.resolve(window.Plotly) : new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = assetUrl();
      s.onload = () => resolve(window.Plotly);
      s.onerror = () => { window.__bnPlotly = null; reject(new Error("plotly.js did not load from " + s.src)); };
      document.head.appendChild(s);
    });
  }
  return window.__bnPlotly;
}
const decoder = new TextDecoder();
const FULLSCREEN = {width: 24, height: 24, path: "M3 3h7v2H5v5H3V3zm11 0h7v7h-2V5h-5V3zM3 14h2v5h5v2H3v-7zm16 0h2v7h-7v-2h5v-5z"};
export default function (component) {
  const { data, parentElement } = component;
  let box = parentElement.querySelector(":scope > div.bn-live");
  if (!box) {
    box = document.createElement("div");
    box.className = "bn-live";
    box.setAttribute("data-testid", "stLiveChart");
    parentElement.appendChild(box);
  }
  // Streamlit keeps the cleanup that the latest call returned and runs it when the element
  // goes away: every exit returns it, so a rerun that sends the same figure keeps it too.
  const cleanup = () => { if (window.Plotly) window.Plotly.purge(box); };
  if (!data) return cleanup;
  const text = typeof data === "string" ? data : decoder.decode(data);
  if (box.__bnText === text) return cleanup;  // the same figure again: nothing to redraw
  box.__bnText = text;
  const fig = JSON.parse(text);
  box.style.minHeight = ((fig.layout && fig.layout.height) || 450) + "px";  // no jump while plotly.js loads
  loadPlotly().then(Plotly => {
    if (box.__bnText !== text) return;  // a newer figure arrived meanwhile
    // One config object per chart while the figure's own config stays the same: Plotly.react
    // compares configs, and a new full-screen button (a new click function) made them differ,
    // so it redrew the whole chart on every update.
    const configText = JSON.stringify(fig.config || {});
    if (box.__bnConfigText !== configText) {
      box.__bnConfigText = configText;
      box.__bnConfig = Object.assign({
        displaylogo: false, responsive: true,
        // no "share"/"edit in Chart Studio" buttons: they upload the chart to Plotly's cloud
        showSendToCloud: false, showEditInChartStudio: false,
        modeBarButtonsToRemove: ["lasso2d", "select2d", "sendDataToCloud", "sendChartToCloud"],
        modeBarButtonsToAdd: [{name: "fullscreen", title: "Full screen (Esc to leave)", icon: FULLSCREEN,
                               click: () => box.requestFullscreen && box.requestFullscreen()}],
      }, fig.config || {});
    }
    const config = box.__bnConfig;
    const figure = {data: fig.data || [], layout: fig.layout || {}, frames: fig.frames || [], config: config};
    box.__bnHeight = figure.layout.height;
    if (document.fullscreenElement === box) {  // a new figure while full screen: stay full screen
      figure.layout = Object.assign({}, figure.layout, {width: window.innerWidth, height: window.innerHeight});
    }
    // Plotly.react diffs against the figure on screen and redraws in place, animation frames
    // included (chapter 1's landscapes: "play" and the step slider animate the new frames).
    // It takes a trace object it drew before as unchanged, and any other as new data to
    // recompute, the whole chart with it; so does a new layout template object, even an equal
    // one, and a new config (ours differs by its full-screen button's function). So the objects
    // of the previous draw go back to it wherever the new figure's are equal: a move of the
    // stability map's star (a layout shape) is then all it redraws. Not reused: a trace that an
    // animation frame writes into (play and the step slider copy a frame's data into it, so it
    // may no longer show what was sent), and a trace whose visibility a legend click changed
    // (an update shows every trace again, as it does for the traces that changed). While "play"
    // is animating, the chart is drawn anew instead (purge, then newPlot, in the same task: no
    // blank frame is painted), which also stops the animation; an interrupted animation's
    // promise rejection is not an error of the page.
    const texts = figure.data.map(t => JSON.stringify(t));
    const template = figure.layout.template ? JSON.stringify(figure.layout.template) : "";
    const td = box._transitionData;
    const animating = !!(td && (td._animationRaf || (td._frameQueue && td._frameQueue.length))) || !!box._transitioning;
    if (animating) {
      Plotly.purge(box);
    } else if (box.__bnTraces && Array.isArray(box.data)) {
      const framed = new Set();
      for (const f of figure.frames.concat((td && td._frames) || [])) {
        (Array.isArray(f.traces) ? f.traces : figure.data.map((_, i) => i)).forEach(i => framed.add(i));
      }
      figure.data = figure.data.map((t, i) => {
        const old = box.data[i];
        return old && !framed.has(i) && box.__bnTraces[i] === texts[i] && old.visible === t.visible ? old : t;
      });
      if (template && box.__bnTemplate === template && box.layout && box.layout.template) {
        figure.layout = Object.assign({}, figure.layout, {template: box.layout.template});
      }
    }
    box.__bnTraces = texts;
    box.__bnTemplate = template;
    const drawn = (animating ? Plotly.newPlot : Plotly.react)(box, figure);
    // box.__bnDrawn: the figure text on screen, once drawn (browser tests wait for it)
    // (and box.__bnError, the message of a failed draw, until one succeeds)
    Promise.resolve(drawn).catch(() => {}).then(() => {
      if (box.__bnText === text) { box.__bnDrawn = text; box.__bnError = undefined; }
    });
    if (!box.__bnFullscreen) {  // full screen: the chart takes the whole screen, and back
      box.__bnFullscreen = true;
      box.addEventListener("fullscreenchange", () => {
        const full = document.fullscreenElement === box;
        Plotly.relayout(box, full ? {width: window.innerWidth, height: window.innerHeight}
                                  : {width: null, height: box.__bnHeight || null});
      });
    }
  }).catch(err => { box.__bnError = err.message || String(err); box.textContent = "This chart could not be drawn: " + box.__bnError; });
  return cleanup;
}
""".replace("@ROUTE@", ASSET_ROUTE)

CSS = ".bn-live { width: 100%; } .bn-live:fullscreen { background: white; }"

#: The component's name, and the element type its deltas carry (what tests and benchmarks count).
COMPONENT = "bnlab_live_chart"
ELEMENT_TYPE = "bidi_component"

_component = st.components.v2.component(COMPONENT, js=JS, css=CSS, isolate_styles=False)


#: The Streamlit runtimes (one per server; AppTest makes one per test) that serve plotly.min.js.
_SERVED: weakref.WeakSet = weakref.WeakSet()


def _serve_plotly_js() -> None:
    """Register the file route for plotly.min.js, once per running Streamlit runtime."""
    from streamlit import runtime

    current = runtime.get_instance() if runtime.exists() else None
    if current is not None and current in _SERVED:
        return
    declare_component(ASSET_NAME, path=str(PLOTLY_JS_DIR))
    if current is not None:
        _SERVED.add(current)


def figure_json(spec: dict) -> bytes:
    """``spec`` as JSON bytes: what ``plotly.io.to_json`` makes of it, in about half the time.

    ``plotly.io.to_json`` first tries exactly this ``orjson.dumps`` (same options), then
    decodes the bytes to a string and escapes ``<``, ``>`` and ``/`` for a JSON embedded in an
    HTML page; this JSON goes to the browser's ``JSON.parse`` as the element's data, so the
    bytes are used as they are (the parsed figure is the same: ``tests/test_live_chart.py``).
    In chapter 1's step-size rerun the four charts' JSON took 1.17 ms of the server's ~9 ms
    with ``plotly.io.to_json``, 0.54 ms this way (thread CPU time in the server, median of 150).
    Anything orjson cannot encode goes through ``plotly.io.to_json`` as before.
    """
    if orjson is not None:
        try:
            return orjson.dumps(spec, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)
        except TypeError:
            pass
    return pio.to_json(spec, validate=False).encode()


def live_chart(spec: dict | bytes, *, key: str, where=None) -> None:
    """Draw ``spec`` (``{"data", "layout", "frames"}``, or its :func:`figure_json`) as a chart
    that updates in place."""
    _serve_plotly_js()
    payload = spec if isinstance(spec, bytes) else figure_json(spec)
    with contextlib.nullcontext() if where is None else where:
        _component(key=key, data=payload, height="content")


def spec_json(element_proto) -> str:
    """The figure JSON a live chart's element carries (its ``BidiComponent`` proto): for tests."""
    return (element_proto.bytes or element_proto.json.encode()).decode()


def spec_of(element_proto, **json_kwargs) -> dict:
    """The figure spec a live chart's element carries, parsed (``json.loads`` keyword arguments)."""
    return json.loads(spec_json(element_proto), **json_kwargs)
