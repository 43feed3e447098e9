"""Chapter 3 in a real browser: the learning-rate slider moved by keyboard retrains and redraws."""

from tests.browser.conftest import assert_no_exception, settle
from tests.browser.conftest import open_chapter as open_chapter_at

#: The training-curve chart's y values per trace, read from the Plotly graph div in the page.
CURVES_JS = """() => {
  const el = [...document.querySelectorAll('.js-plotly-plot')].find(
      e => e.layout && e.layout.title && String(e.layout.title.text).includes('Loss and test accuracy'));
  if (!el || !el.data || !el.data.length) return null;
  return JSON.stringify(el.data.map(t => [t.name, t.y]));  // y: a list or Plotly's typed-array dict
}"""


def open_chapter(page, url):
    open_chapter_at(page, url, "3 · Batch norm in a network", "Learning rate", CURVES_JS, last_text="Show the code")


def test_learning_rate_slider_by_keyboard_changes_the_curves(app_url, page):
    open_chapter(page, f"{app_url}/bn-in-network?c3_steps=30")
    assert_no_exception(page)
    before = page.evaluate(CURVES_JS)
    assert "without BN" in before and "with BN" in before and '"y":null' not in before
    slider = page.get_by_role("slider", name="Learning rate")
    slider.focus()
    page.keyboard.press("ArrowRight")  # 0.3 -> 1 on the log grid
    page.wait_for_function("() => location.search.includes('c3_lr=1&')", timeout=60_000)
    settle(page)
    page.wait_for_function(f"({CURVES_JS})() !== {before!r}", timeout=60_000)
    settle(page)
    after = page.evaluate(CURVES_JS)
    assert after != before
    assert "c3_lr=1" in page.url  # the new value is shareable
    assert_no_exception(page)
