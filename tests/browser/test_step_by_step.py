"""Chapter 2 in a real browser: the gamma slider moved by keyboard redraws the output histogram."""

from tests.browser.conftest import assert_no_exception, settle
from tests.browser.conftest import open_chapter as open_chapter_at

#: The pipeline chart's output-stage data (plain arrays or Plotly's base64 typed arrays, as
#: JSON text), read from the Plotly graph div in the page.
OUTPUT_VALUES_JS = """() => {
  const el = [...document.querySelectorAll('.js-plotly-plot')].find(
      e => e.layout && e.layout.title && String(e.layout.title.text).includes('A mini-batch'));
  if (!el || !el.data) return null;
  return JSON.stringify(el.data.filter(t => String(t.name).startsWith('output')).map(t => t.x));
}"""


def open_chapter(page, url):
    open_chapter_at(page, url, "2 · Batch norm, step by step", "gamma γ (scale)", OUTPUT_VALUES_JS)


def test_gamma_slider_by_keyboard_changes_the_output_histogram(app_url, page):
    open_chapter(page, f"{app_url}/bn-step-by-step")
    assert_no_exception(page)
    before = page.evaluate(OUTPUT_VALUES_JS)
    slider = page.get_by_role("slider", name="gamma γ (scale)")
    slider.focus()
    page.keyboard.press("ArrowRight")
    settle(page)
    page.wait_for_function(f"({OUTPUT_VALUES_JS})() !== {before!r}", timeout=60_000)
    settle(page)
    after = page.evaluate(OUTPUT_VALUES_JS)
    assert after != before
    assert "c2_gamma=1.1" in page.url  # the new value is shareable
    assert_no_exception(page)


def test_batch_of_one_from_the_link_explains_instead_of_crashing(app_url, page):
    open_chapter(page, f"{app_url}/bn-step-by-step?c2_batch=1&c2_gamma=nan")
    assert_no_exception(page)
    text = page.get_by_text("cannot train on a batch of one sample").first
    assert text.is_visible()
    assert page.get_by_text("is not a number").first.is_visible()  # the NaN in the link was reported
