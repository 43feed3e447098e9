"""Chapter 5 in a real browser: a deep link opens with its charts and its settings, and the
batch-size slider moved by keyboard retrains and redraws the main chart."""

import json

from tests.browser.conftest import assert_no_exception, open_chapter, settle

#: The main chart's traces (name, y) read from the Plotly graph div.
MAIN_JS = """() => {
  const el = [...document.querySelectorAll('.js-plotly-plot')].find(
      e => e.layout && e.layout.title && String(e.layout.title.text).includes('Test accuracy in evaluation mode'));
  if (!el || !el.data || !el.data.length) return null;
  return JSON.stringify(el.data.map(t => [t.name, t.y]));
}"""
COUNT_JS = "() => document.querySelectorAll('.js-plotly-plot').length"


def test_deep_link_opens_with_charts_and_keyboard_changes_the_batch(app_url, page):
    open_chapter(page, f"{app_url}/sequence-models?c5_steps=30&c5_len=4&c5_policy=fresh&c5_batch=16",
                 "5 · Sequence models", "Batch size", MAIN_JS, last_text="Why Transformers use LayerNorm")
    assert_no_exception(page)
    assert page.evaluate(COUNT_JS) >= 3
    slider = page.get_by_role("slider", name="Batch size")
    assert slider.get_attribute("aria-valuetext") == "16"
    assert page.get_by_role("radio", name="fresh statistics (mean 0, variance 1)").is_checked()
    before = page.evaluate(MAIN_JS)
    assert "BN per time step" in before and "LayerNorm" in before
    slider.focus()
    page.keyboard.press("ArrowLeft")  # 16 -> 15
    page.wait_for_function("() => location.search.includes('c5_batch=15')", timeout=60_000)
    settle(page)
    page.wait_for_function(f"({MAIN_JS})() !== {before!r}", timeout=90_000)
    settle(page)
    assert page.evaluate(MAIN_JS) != before
    assert_no_exception(page)


def test_bad_link_opens_with_a_message_and_charts(app_url, page):
    open_chapter(page, f"{app_url}/sequence-models?c5_steps=20&c5_batch=1&c5_len=zzz",
                 "5 · Sequence models", "Batch size", MAIN_JS, last_text="Why Transformers use LayerNorm")
    assert_no_exception(page)
    assert page.get_by_text("Some settings in the link were adjusted").count() >= 1
    assert page.get_by_text("BatchNorm1d cannot train on a batch of 1 sample").count() >= 1
    names = [t[0] for t in json.loads(page.evaluate(MAIN_JS))]
    assert "BN per time step" not in names and "BN per time step: cannot train on this batch" in names
