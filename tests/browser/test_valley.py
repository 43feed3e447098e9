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


def _open(page, url):
    page.goto(url)
    page.get_by_role("slider", name="fraction of 2/λ_max").wait_for(timeout=60_000)
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    settle(page)
    page.wait_for_timeout(500)


def test_play_pause_and_play_twice_raise_no_page_error_and_the_frame_label_is_visible(app_url, page):
    """The ``page`` fixture fails the test on any uncaught page error (pageerror listener)."""
    _open(page, f"{app_url}/valley-vs-bowl?c1_map=0&c1_speed=fast")
    plot = page.locator(".js-plotly-plot").first
    buttons = plot.locator(".updatemenu-button")
    assert [buttons.nth(i).text_content() for i in range(buttons.count())] == ["play", "pause"]
    play, pause = buttons.nth(0), buttons.nth(1)
    play.click()
    page.wait_for_timeout(400)
    pause.click()  # interrupts the animation: Plotly rejects its promise (ANIMATION_GUARD handles it)
    page.wait_for_timeout(400)
    play.click()
    page.wait_for_timeout(150)
    play.click()  # play while playing: interrupts the first play
    page.wait_for_timeout(3500)  # 16 frames x 120 ms, played to the end
    assert_no_exception(page)
    label = plot.locator(".slider-container text").filter(has_text="step ")
    assert label.count() == 1
    box, chart = label.bounding_box(), plot.bounding_box()
    assert box["x"] >= chart["x"] and box["x"] + box["width"] <= chart["x"] + chart["width"]
    assert box["y"] >= chart["y"] and box["y"] + box["height"] <= chart["y"] + chart["height"]
    for i in range(buttons.count()):  # the label does not sit under the buttons
        b = buttons.nth(i).bounding_box()
        assert box["x"] >= b["x"] + b["width"] or box["y"] + box["height"] <= b["y"] or box["y"] >= b["y"] + b["height"]


def test_the_fraction_slider_shows_its_value_after_a_mode_round_trip(app_url, page):
    """Issue 10, item 1, as the browser shows it (aria-valuetext), not only as the server holds it."""
    _open(page, f"{app_url}/valley-vs-bowl?c1_map=0&c1_epochs=5&c1_frac=0.9")
    assert page.get_by_role("slider", name="fraction of 2/λ_max").get_attribute("aria-valuetext") == "0.9"
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("same learning rate for all").click()
    page.get_by_role("slider", name="learning rate α").wait_for(timeout=60_000)
    settle(page)
    assert page.get_by_role("slider", name="learning rate α").get_attribute("aria-valuetext") == "5e-05"
    sidebar.get_by_text("fraction of each variant's 2/λ_max").click()
    slider = page.get_by_role("slider", name="fraction of 2/λ_max")
    slider.wait_for(timeout=60_000)
    settle(page)
    assert slider.get_attribute("aria-valuetext") == "0.9"  # it showed 0.01
    slider.focus()
    slider.press("ArrowRight")
    settle(page)
    page.wait_for_function("() => window.location.search.includes('c1_frac=0.95')", timeout=30_000)
    assert slider.get_attribute("aria-valuetext") == "0.95"  # one key from 0.9, not from 0.01
