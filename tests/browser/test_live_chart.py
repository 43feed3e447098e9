"""Live charts in Chromium: a slider move redraws the same chart elements in place.

``ui.live_chart`` exists so that a rerun hands each chart its new figure and Plotly updates it
(``Plotly.react``) instead of Streamlit throwing the chart away and building a new one. These
tests fail if a chart element is replaced, if its data does not follow the slider, if plotly.js
comes from anywhere but this server, or if it is loaded more than once per page.
"""

import pytest

from tests.browser.conftest import assert_no_exception, settle
from ui import live_chart

# Tag every chart element on the page, then (later) count how many still carry their tag.
TAG_JS = """() => { const ps = [...document.querySelectorAll('.js-plotly-plot')];
  ps.forEach((p, i) => { p.__bnTag = i; }); return ps.length; }"""
KEPT_JS = "() => [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.__bnTag !== undefined).length"
# The x of the first landscape's path trace (a typed array or a list; stringified to compare).
PATH_JS = """() => { const p = document.querySelector('.js-plotly-plot');
  const t = p.data.find(t => (t.name || '').startsWith('path')); return JSON.stringify(Array.from(t.x)); }"""


def test_a_step_size_move_updates_every_chart_in_place(app_url, page):
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{app_url}/valley-vs-bowl?c1_frac=0.5&c1_epochs=30")
    slider = page.get_by_role("slider", name="fraction of 2/λ_max")
    slider.wait_for(timeout=60_000)
    settle(page)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length === 4", timeout=60_000)
    assert page.get_by_test_id("stLiveChart").count() == 4  # every chart is a live chart
    assert page.evaluate(TAG_JS) == 4
    before = page.evaluate(PATH_JS)

    slider.focus()
    slider.press("ArrowRight")  # 0.5 -> 0.6: every chart depends on the step size
    page.wait_for_function("() => window.location.search.includes('c1_frac=0.6')", timeout=30_000)
    settle(page)
    page.wait_for_function(f"before => ({PATH_JS})() !== before", arg=before, timeout=30_000)
    assert page.evaluate(KEPT_JS) == 4, "a chart element was rebuilt instead of updated"
    assert_no_exception(page)

    plotly_js = [u for u in requests if u.endswith("plotly.min.js")]
    assert len(plotly_js) == 1, plotly_js  # loaded once per page, not once per chart
    assert plotly_js[0].startswith(app_url) and live_chart.ASSET_ROUTE in plotly_js[0]
    assert all(u.startswith(app_url) or u.startswith("data:") or u.startswith("blob:") for u in requests), \
        [u for u in requests if not u.startswith(app_url)][:5]


# The first landscape: frames installed (what "play" and its step slider animate), listeners.
FRAMES_JS = "() => document.querySelector('.js-plotly-plot')._transitionData._frames.length"
LISTENERS_JS = """() => { const ev = document.querySelector('.js-plotly-plot')._internalEv;
  return ev && ev.listenerCount ? ev.listenerCount('plotly_animatingframe') : -1; }"""
PATH_LEN_JS = """() => { const p = document.querySelector('.js-plotly-plot');
  return p.data.find(t => (t.name || '').startsWith('path')).x.length; }"""


def test_after_updates_play_and_the_step_slider_still_animate_and_nothing_uploads(app_url, page):
    page.goto(f"{app_url}/valley-vs-bowl?c1_frac=0.5&c1_epochs=30&c1_map=0")
    slider = page.get_by_role("slider", name="fraction of 2/λ_max")
    slider.wait_for(timeout=60_000)
    settle(page)
    frames, listeners = page.evaluate(FRAMES_JS), page.evaluate(LISTENERS_JS)
    assert frames > 1
    slider.focus()
    for value in ("0.6", "0.7", "0.8"):  # three updates of every chart
        slider.press("ArrowRight")
        page.wait_for_function(f"() => window.location.search.includes('c1_frac={value}')", timeout=30_000)
        settle(page)
    assert page.evaluate(FRAMES_JS) == frames, "the landscape lost its animation frames in an update"
    assert page.evaluate(LISTENERS_JS) == listeners, "every update added event listeners"
    full = page.evaluate(PATH_LEN_JS)
    # "play" starts at step 0: the drawn path gets shorter than the whole run's, then grows back.
    page.locator(".js-plotly-plot").first.locator(".updatemenu-button", has_text="play").click()
    page.wait_for_function(f"() => ({PATH_LEN_JS})() < {full}", timeout=10_000)
    page.wait_for_function(f"() => ({PATH_LEN_JS})() === {full}", timeout=30_000)

    chart = page.locator(".js-plotly-plot").first
    chart.hover()
    buttons = chart.locator(".modebar-btn")
    titles = [buttons.nth(i).get_attribute("data-title") or "" for i in range(buttons.count())]
    assert not [t for t in titles if "share" in t.lower() or "cloud" in t.lower() or "studio" in t.lower()], titles
    chart.locator('.modebar-btn[data-title^="Full screen"]').click()
    page.wait_for_function("() => document.fullscreenElement !== null", timeout=10_000)
    page.wait_for_function("() => document.querySelector('.js-plotly-plot')._fullLayout.height === window.innerHeight",
                           timeout=10_000)
    page.evaluate("() => document.exitFullscreen()")
    page.wait_for_function("() => document.querySelector('.js-plotly-plot')._fullLayout.height < window.innerHeight",
                           timeout=10_000)
    assert_no_exception(page)


def test_lecture_mode_font_reaches_the_drawn_chart(app_url, page):
    page.goto(f"{app_url}/valley-vs-bowl?c1_epochs=5&c1_map=0&lecture=1")
    page.wait_for_selector(".js-plotly-plot .xtick text", timeout=60_000)
    settle(page)
    size = page.evaluate("() => document.querySelector('.js-plotly-plot .xtick text').style.fontSize")
    assert size == "21px"  # ui.page.FONT[True][0]: readable from the back row
    assert_no_exception(page)


# The stability map: watch its heat maps' layer for any DOM change, and report where its stars are.
MAP_JS = "[...document.querySelectorAll('.js-plotly-plot')].find(p => (p.layout.title.text || '').startsWith('Stability'))"
WATCH_HEATMAPS_JS = f"""() => {{ const map = {MAP_JS}; window.__heatChanges = 0;
  const layers = map.querySelectorAll('.heatmaplayer');
  layers.forEach(l => new MutationObserver(ms => {{ window.__heatChanges += ms.length; }})
    .observe(l, {{subtree: true, childList: true, attributes: true}}));
  map.data[0].__bnTag = 'kept'; map.__bnConfig.__bnTag = 'kept'; return layers.length; }}"""
STARS_JS = f"() => ({MAP_JS}).layout.shapes.map(s => s.xanchor)"


def test_a_step_size_move_redraws_only_the_maps_star_not_its_heat_maps(app_url, page):
    """The map's heat maps do not change with the step size: only its stars move. The chart gets
    its unchanged traces, template and config back as the same objects, so Plotly redraws the
    stars (layout shapes) alone. A new config object or template, or the star as a trace, made
    Plotly recompute and redraw the whole map on every move (~30 ms more per key press)."""
    page.goto(f"{app_url}/valley-vs-bowl?c1_frac=0.5&c1_epochs=10")
    slider = page.get_by_role("slider", name="fraction of 2/λ_max")
    slider.wait_for(timeout=60_000)
    settle(page)
    page.wait_for_function(f"() => {MAP_JS} && ({MAP_JS}).layout.shapes", timeout=60_000)
    assert page.evaluate(WATCH_HEATMAPS_JS) == 2  # one heat map per variant
    assert page.evaluate(STARS_JS) == [0.5, 0.5]
    slider.focus()
    slider.press("ArrowRight")  # 0.5 -> 0.6
    page.wait_for_function("() => window.location.search.includes('c1_frac=0.6')", timeout=30_000)
    page.wait_for_function(f"() => JSON.stringify(({STARS_JS})()) === '[0.6,0.6]'", timeout=30_000)
    settle(page)
    assert page.evaluate("() => window.__heatChanges") == 0, "the heat maps were redrawn for a star move"
    assert page.evaluate(f"() => ({MAP_JS}).data[0].__bnTag") == "kept"  # the same trace object
    assert page.evaluate(f"() => ({MAP_JS}).__bnConfig.__bnTag") == "kept"  # and the same config
    assert_no_exception(page)


# Per landscape: are the frames Plotly holds those of the figure the element received last (names
# and data), does the step slider list them, and how many frame listeners are there?
LANDSCAPE_FRAMES_JS = """() => [...document.querySelectorAll('.js-plotly-plot')]
  .filter(g => g._transitionData && g._transitionData._frames.length).map(g => {
    const sent = JSON.parse(g.__bnText).frames, have = g._transitionData._frames;
    const ev = g._internalEv;
    return {same: sent.length === have.length && sent.every((f, i) => f.name === have[i].name
                  && JSON.stringify(f.data) === JSON.stringify(have[i].data)),
            slider: g.layout.sliders[0].steps.map(s => s.label).join() === sent.map(f => f.name).join(),
            listeners: ev && ev.listenerCount ? ev.listenerCount('plotly_animatingframe') : -1,
            frames: have.length}; })"""


def test_updated_landscapes_animate_the_new_runs_frames_even_when_their_number_changes(app_url, page):
    """The landscapes are updated with Plotly.react, frames included: after every move (1.2 ->
    1.5 diverges early, so fewer frames, and back) the frames and the step slider are the new
    run's, with one set of listeners; a move while "play" runs draws the chart anew."""
    page.goto(f"{app_url}/valley-vs-bowl?c1_frac=1.2&c1_epochs=30&c1_map=0&c1_speed=slow")
    slider = page.get_by_role("slider", name="fraction of 2/λ_max")
    slider.wait_for(timeout=60_000)
    settle(page)
    counts = []
    for key, value in (("ArrowRight", "1.5"), ("ArrowLeft", "1.2"), ("ArrowLeft", "1.1")):
        if value == "1.1":  # this move arrives while "play" animates (600 ms per frame)
            page.evaluate("() => { document.querySelector('.js-plotly-plot').data[0].__bnTag = 'kept'; }")
            page.locator(".js-plotly-plot").first.locator(".updatemenu-button", has_text="play").click()
            page.wait_for_function("() => document.querySelector('.js-plotly-plot')._transitionData._animationRaf",
                                   timeout=10_000)
        slider.focus()
        slider.press(key)
        page.wait_for_function(f"() => window.location.search.includes('c1_frac={value}')", timeout=30_000)
        settle(page)
        page.wait_for_function(f"() => ({LANDSCAPE_FRAMES_JS})().every(l => l.same)", timeout=30_000)
        state = page.evaluate(LANDSCAPE_FRAMES_JS)
        assert len(state) == 2 and all(s["slider"] and s["listeners"] == 1 for s in state), state
        counts.append([s["frames"] for s in state])
    assert counts[0] != counts[1], counts  # 1.5 diverges within a few steps: fewer frames than 1.2
    # the move during "play" drew the chart anew (newPlot), not with react on the running animation
    assert page.evaluate("() => document.querySelector('.js-plotly-plot').data[0].__bnTag") is None
    assert_no_exception(page)


# The first landscape: how many points its path trace shows, and how many the figure sent has.
PATH_SHOWN_SENT_JS = """() => { const g = document.querySelector('.js-plotly-plot');
  return [g.data[1].x.length, JSON.parse(g.__bnText).data[1].x.length]; }"""


def test_a_layout_only_update_redraws_the_path_a_frame_had_shortened(app_url, page):
    """The step slider under a landscape copies a frame's data into the path trace. An update
    that changes only the layout (here the animation speed) must show the sent path again,
    not keep the shortened trace object while the step slider jumps back to the last step."""
    page.goto(f"{app_url}/valley-vs-bowl?c1_frac=0.5&c1_epochs=30&c1_map=0")
    page.get_by_role("slider", name="fraction of 2/λ_max").wait_for(timeout=60_000)
    settle(page)
    shown, sent = page.evaluate(PATH_SHOWN_SENT_JS)
    assert shown == sent > 2
    page.evaluate("""() => Plotly.animate(document.querySelector('.js-plotly-plot'), ['0'],
        {mode: 'immediate', frame: {duration: 0, redraw: true}, transition: {duration: 0}})""")  # the step slider at "0"
    page.wait_for_function(f"() => ({PATH_SHOWN_SENT_JS})()[0] === 1", timeout=10_000)
    sidebar = page.get_by_test_id("stSidebarUserContent")
    sidebar.get_by_text("Display", exact=True).click()
    fast = sidebar.get_by_text("fast (0.12 s per frame)", exact=True)
    fast.wait_for(timeout=30_000)
    settle(page)  # the expander open and still (a click while it unfolds can miss the radio)
    fast.click()
    page.wait_for_function("() => window.location.search.includes('c1_speed=fast')", timeout=30_000)
    settle(page)
    page.wait_for_function(f"() => {{ const [a, b] = ({PATH_SHOWN_SENT_JS})(); return a === b; }}", timeout=30_000)
    assert page.evaluate(PATH_SHOWN_SENT_JS)[0] == sent
    assert_no_exception(page)


def test_a_chart_whose_plotly_js_cannot_load_says_so_and_settle_reports_it(app_url, page):
    """If plotly.js does not arrive, each chart says it could not be drawn (no blank box), and
    the tests' settle() fails with that message instead of waiting for a draw that never comes."""
    page.route("**/plotly.min.js", lambda route: route.abort())
    page.goto(f"{app_url}/bn-step-by-step")
    page.get_by_role("slider", name="gamma γ (scale)").wait_for(timeout=60_000)
    with pytest.raises(AssertionError, match="a chart could not be drawn"):
        settle(page)
    boxes = page.locator('[data-testid="stLiveChart"]')
    assert boxes.count() >= 1
    for text in boxes.all_inner_texts():
        assert text.startswith("This chart could not be drawn: plotly.js did not load from"), text
