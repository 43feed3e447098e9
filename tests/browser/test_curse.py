"""Chapter 4 in a real browser: a deep link opens with its charts, and the batch-size control,
moved by keyboard, moves the main chart's batch marker and is written back to the link."""

from tests.browser.conftest import assert_no_exception, settle
from tests.browser.conftest import open_chapter as open_chapter_at

HEADING = "4 · The curse of batch norm"

#: The main chart's batch-size marker and its traces, read from the Plotly graph div.
MAIN_JS = """() => {
  const el = [...document.querySelectorAll('.js-plotly-plot')].find(
      e => e.layout && e.layout.title && String(e.layout.title.text).includes('Test error vs batch size'));
  if (!el || !el.data || el.data.length < 5) return null;
  return JSON.stringify({shapes: (el.layout.shapes || []).map(s => s.x0), names: el.data.map(t => t.name)});
}"""

COUNT_JS = "() => document.querySelectorAll('.js-plotly-plot').length"


def open_chapter(page, url):
    open_chapter_at(page, url, HEADING, "Batch size", MAIN_JS, last_text="Which normalizer when")


def test_deep_link_opens_with_its_charts_and_the_batch_control_moves_the_main_chart(app_url, page):
    open_chapter(page, f"{app_url}/curse-of-batch-norm?c4_batch=8&c4_axm=group&c4_axg=3")
    assert_no_exception(page)
    assert page.evaluate(COUNT_JS) >= 9
    before = page.evaluate(MAIN_JS)
    assert '"shapes":[8]' in before and "BatchNorm, published" in before
    titles = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].map(e => e.layout.title.text)")
    assert any("GroupNorm (G = 3)" in t for t in titles), titles  # the link's picture settings came back
    slider = page.get_by_role("slider", name="Batch size")
    assert slider.get_attribute("aria-valuetext") == "8"
    slider.focus()
    page.keyboard.press("ArrowRight")  # 8 -> 16
    page.wait_for_function("() => location.search.includes('c4_batch=16')", timeout=60_000)
    settle(page, timeout_s=300)
    page.wait_for_function(f"({MAIN_JS})() !== {before!r}", timeout=120_000)
    after = page.evaluate(MAIN_JS)
    assert '"shapes":[16]' in after
    page.get_by_text("Which normalizer when").wait_for(timeout=300_000)
    settle(page, timeout_s=300)
    assert_no_exception(page)
