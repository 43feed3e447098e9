"""At 1280 x 720, a projector's size, the first screen of every chapter holds its title, its
key control(s) and its main chart, without scrolling (the course issue's projector rule)."""

import pytest

from tests.browser.conftest import new_context, settle
from ui import course

WIDTH, HEIGHT = 1280, 720
#: How much of the main chart must be on the first screen (pixels, or all of it if smaller).
MIN_CHART_VISIBLE = 300


def _box(locator):
    locator.first.wait_for(state="visible", timeout=90_000)
    return locator.first.bounding_box()


@pytest.mark.parametrize("chapter", [c.number for c in course.chapters()])
def test_first_screen_shows_title_key_control_and_main_chart(browser, app_url, chapter):
    ch = course.chapter(chapter)
    context = new_context(browser, viewport={"width": WIDTH, "height": HEIGHT})
    page = context.new_page()
    outside: list[str] = []  # nothing may be fetched from outside at run time (fonts, icons, ...)
    page.on("request", lambda r: None if r.url.startswith((app_url, "data:", "blob:")) else outside.append(r.url))
    try:
        page.goto(f"{app_url}/{ch.url_path}")
        page.get_by_role("heading", name=ch.title).wait_for(timeout=90_000)
        page.locator(".js-plotly-plot").first.wait_for(timeout=120_000)
        settle(page)
        title = _box(page.get_by_role("heading", name=ch.title))
        assert title["y"] >= 0 and title["y"] + title["height"] <= HEIGHT
        sidebar = page.get_by_test_id("stSidebar")
        labels = ch.key_controls or ()
        controls = [sidebar.get_by_role("slider", name=label) for label in labels] or [
            sidebar.get_by_role("slider")]
        for label, control in zip(labels or ("first slider",), controls, strict=True):
            box = _box(control)
            assert 0 <= box["y"] and box["y"] + box["height"] <= HEIGHT, (
                f"chapter {chapter}: key control {label!r} is at y = {box['y']:.0f}, below the first screen")
        chart = _box(page.locator(".js-plotly-plot"))
        visible = min(HEIGHT, chart["y"] + chart["height"]) - max(0, chart["y"])
        assert visible >= min(MIN_CHART_VISIBLE, chart["height"]), (
            f"chapter {chapter}: only {visible:.0f} px of the main chart are on the first screen "
            f"(its top is at y = {chart['y']:.0f})")
        assert not outside, f"chapter {chapter} fetched from outside: {outside[:5]}"
    finally:
        context.close()


# Every chart's title, and every tick label of every x axis, inside the chart's own box, and
# no x tick label turned on its side (Plotly does that when the labels do not fit).
OVERRUNS_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].flatMap(p => {
  const box = p.getBoundingClientRect(), out = [];
  const name = (p.layout && p.layout.title && String(p.layout.title.text).slice(0, 40)) || '?';
  const t = p.querySelector('.gtitle');
  if (t && t.getBoundingClientRect().right > box.right + 1) out.push(`title of '${name}' runs past its chart`);
  for (const tick of p.querySelectorAll('.xtick text')) {
    const r = tick.getBoundingClientRect();
    if (r.width && (r.right > box.right + 1 || r.left < box.left - 1)) { out.push(`x tick of '${name}' outside`); break; }
    if (/rotate\\((-?[1-9]|-?[1-9][0-9])/.test(tick.getAttribute('transform') || '')) {
      out.push(`x ticks of '${name}' turned on their side`); break; }
  }
  return out; })"""


@pytest.mark.parametrize("chapter", [c.number for c in course.chapters()])
def test_lecture_mode_titles_and_ticks_fit_their_charts_on_a_projector(browser, app_url, chapter):
    ch = course.chapter(chapter)
    context = new_context(browser, viewport={"width": WIDTH, "height": HEIGHT})
    page = context.new_page()
    try:
        page.goto(f"{app_url}/{ch.url_path}?lecture=1")
        page.get_by_role("heading", name=ch.title).wait_for(timeout=90_000)
        page.locator(".js-plotly-plot").first.wait_for(timeout=120_000)
        settle(page)
        assert page.evaluate(OVERRUNS_JS) == []
    finally:
        context.close()
