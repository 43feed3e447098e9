"""Chapter 1 in a real browser: move the learning-rate slider with the keyboard, the charts change."""

from tests.browser.conftest import assert_no_exception, settle

# Name, x and y of every trace of every Plotly chart on the page (typed arrays stringify too).
CHARTS_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
    .map(el => JSON.stringify((el.data || []).map(t => [t.name, t.x, t.y]))).join('|')"""


def test_learning_rate_slider_moves_the_paths(app_url, page):
    # Chapter 1 is the app's default page, which Streamlit serves at "/" (a default page's
    # url_path is not routed). "Same learning rate for all" makes the slider the step size itself.
    page.goto(f"{app_url}/?c1_mode=same&c1_lr=0.00005&c1_epochs=30&c1_map=0")
    settle(page)
    assert_no_exception(page)
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    assert page.locator(".js-plotly-plot").count() >= 3  # two landscapes and the convergence chart
    page.evaluate(f"() => {{ window.__c1_before = ({CHARTS_JS})(); }}")

    slider = page.get_by_role("slider", name="learning rate α")
    slider.focus()
    slider.press("ArrowRight")  # 5e-5 -> 7e-5 (still below raw's 2/lambda_max ~ 7.4e-5)
    settle(page)
    page.wait_for_function(f"() => ({CHARTS_JS})() !== window.__c1_before", timeout=60_000)
    assert_no_exception(page)
    page.wait_for_function("() => window.location.search.includes('c1_lr=7e-05')", timeout=30_000)

    slider.press("ArrowRight")  # 7e-5 -> 1e-4: above 2/lambda_max, the raw valley diverges
    settle(page)
    page.get_by_text("diverged at step", exact=False).first.wait_for(timeout=60_000)
    assert_no_exception(page)
