"""Chapter 1 in a real browser: move the learning-rate slider with the keyboard, the charts change."""

from tests.browser.conftest import assert_no_exception, new_context, settle

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


def test_fraction_slider_shows_its_value_after_the_other_mode(app_url, page):
    """Issue 10.1 in Chromium: after "same learning rate for all" and back, the fraction slider
    showed 0.01 (its first option) while the page used 0.5; one arrow key then lost the setting."""
    page.goto(f"{app_url}/valley-vs-bowl?c1_map=0&c1_epochs=5")
    frac = page.get_by_role("slider", name="fraction of 2/λ_max")
    frac.wait_for(timeout=60_000)
    settle(page)
    frac.focus()
    frac.press("ArrowRight")  # 0.5 -> 0.6
    settle(page)
    page.wait_for_function("() => window.location.search.includes('c1_frac=0.6')", timeout=30_000)
    sidebar = page.get_by_test_id("stSidebarUserContent")
    sidebar.get_by_text("same learning rate for all", exact=True).click()
    settle(page)
    page.get_by_role("slider", name="learning rate α").wait_for(timeout=60_000)
    sidebar.get_by_text("fraction of each variant's 2/λ_max", exact=True).click()
    settle(page)
    frac = page.get_by_role("slider", name="fraction of 2/λ_max")
    frac.wait_for(timeout=60_000)
    assert frac.get_attribute("aria-valuetext") == "0.6"
    frac.focus()
    frac.press("ArrowRight")  # 0.6 -> 0.7, not 0.01 -> 0.02
    settle(page)
    page.wait_for_function("() => window.location.search.includes('c1_frac=0.7')", timeout=30_000)
    assert frac.get_attribute("aria-valuetext") == "0.7"
    assert_no_exception(page)


def test_a_refused_big_file_leaves_messages_that_name_the_file_still_held(app_url, page):
    """Issue 10.5 as c1 fixed it: the uploader refuses a file over the limit in the browser, without a
    rerun; the page's messages then name the file the uploader still holds, which is still listed."""
    from bn_core.upload import MAX_MB

    page.goto(f"{app_url}/valley-vs-bowl?c1_source=upload&c1_map=0&c1_epochs=3")
    uploader = page.locator("input[type=file]")
    uploader.wait_for(state="attached", timeout=60_000)
    settle(page)
    uploader.set_input_files(files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": b"a,b\n1,2\n"}])
    settle(page)
    held = page.get_by_text("The file the uploader holds, bad.csv", exact=False)
    held.first.wait_for(timeout=60_000)
    big = b"a,b,y\n" + b"1,2,3\n" * (MAX_MB * 2**20 // 6 + 1000)
    uploader.set_input_files(files=[{"name": "big.csv", "mimeType": "text/csv", "buffer": big}])
    page.get_by_test_id("stFileChipIconError").wait_for(timeout=30_000)
    page.wait_for_timeout(1000)
    names = page.get_by_test_id("stFileChipName").all_inner_texts()
    assert "bad.csv" in names and "big.csv" in names  # the refused file is listed beside the held one
    assert held.first.is_visible()  # ... and the message names the held one, which is true
    assert page.get_by_text("bad.csv cannot be used").first.is_visible()  # under the uploader
    assert_no_exception(page)


BOXES_JS = """() => { const p = document.querySelector('.js-plotly-plot');
  const seen = e => { const st = getComputedStyle(e); return st.visibility !== 'hidden' && st.display !== 'none'
      && parseFloat(st.opacity || '1') > 0 && parseFloat(st.fillOpacity || '1') > 0
      && (e.tagName !== 'text' || e.textContent.trim() !== ''); };
  const box = s => Array.from(p.querySelectorAll(s)).filter(seen).map(e => { const r = e.getBoundingClientRect();
      return [s, r.left, r.top, r.right, r.bottom, e.textContent.trim()]; }).filter(b => b[3] > b[1] && b[4] > b[2]);
  return [...box('.updatemenu-button'), ...box('.slider-label'), ...box('.slider-rail-rect'), ...box('.legendtext')]; }"""


def _overlap(a, b) -> bool:
    return a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]


def test_landscape_animation_controls_do_not_overlap_at_the_projector_size(app_url, browser):
    context = new_context(browser, viewport={"width": 1280, "height": 720})
    page = context.new_page()
    try:
        page.goto(f"{app_url}/valley-vs-bowl?c1_map=0")
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        settle(page)
        boxes = page.evaluate(BOXES_JS)
    finally:
        context.close()
    buttons = [b for b in boxes if b[0] == ".updatemenu-button"]
    slider = [b for b in boxes if b[0] in (".slider-label", ".slider-rail-rect")]
    legend = [b for b in boxes if b[0] == ".legendtext"]
    assert buttons and slider and legend
    clashes = [(a, b) for a in buttons + legend for b in slider if _overlap(a, b)]
    assert not clashes, clashes
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


def test_momentum_slider_shows_its_value_after_another_optimizer(app_url, page):
    """Issue 10.1 for the optimizer's own controls, in Chromium (momentum showed 0.0 after GD and back)."""
    page.goto(f"{app_url}/valley-vs-bowl?c1_map=0&c1_epochs=5&c1_opt=momentum&c1_mom=0.5")
    mom = page.get_by_role("slider", name="momentum μ")
    mom.wait_for(timeout=60_000)
    settle(page)
    assert mom.get_attribute("aria-valuetext") == "0.5"
    sidebar = page.get_by_test_id("stSidebarUserContent")
    sidebar.get_by_test_id("stSelectbox").filter(has_text="optimizer").click()
    page.get_by_role("option", name="Gradient descent / SGD").click()
    settle(page)
    mom.wait_for(state="detached", timeout=30_000)
    sidebar.get_by_test_id("stSelectbox").filter(has_text="optimizer").click()
    page.get_by_role("option", name="Momentum (heavy ball)").click()
    settle(page)
    mom = page.get_by_role("slider", name="momentum μ")
    mom.wait_for(timeout=60_000)
    assert mom.get_attribute("aria-valuetext") == "0.5"
    assert_no_exception(page)


def test_batch_slider_keys_pressed_quickly_all_count(app_url, page):
    """The batch slider is re-assigned on every run (its range follows n): quick arrow keys must not be
    undone by a rerun sending an older value back."""
    page.goto(f"{app_url}/valley-vs-bowl?c1_map=0&c1_epochs=2&c1_batch=50")
    page.get_by_test_id("stSidebarUserContent").get_by_text("Batches, epochs, tolerance").click()
    batch = page.get_by_role("slider", name="batch size (n = full-batch gradient descent)")
    batch.wait_for(timeout=60_000)
    settle(page)
    batch.focus()
    for _ in range(5):
        batch.press("ArrowRight")
        page.wait_for_timeout(60)
    settle(page)
    page.wait_for_timeout(1500)
    settle(page)
    assert batch.get_attribute("aria-valuetext") == "55"
    page.wait_for_function("() => window.location.search.includes('c1_batch=55')", timeout=30_000)
    assert_no_exception(page)


def test_the_same_rate_mode_shows_the_rate_it_opened_on(app_url, page):
    """Item 11 as c1 fixed it (n = 2: alpha = 5e-5 would diverge): the slider shows the value the page set."""
    page.goto(f"{app_url}/valley-vs-bowl?c1_map=0&c1_n=2&c1_variants=raw,batchnorm")
    page.get_by_role("slider", name="fraction of 2/λ_max").wait_for(timeout=60_000)
    settle(page)
    page.get_by_test_id("stSidebarUserContent").get_by_text("same learning rate for all", exact=True).click()
    settle(page)
    lr = page.get_by_role("slider", name="learning rate α")
    lr.wait_for(timeout=60_000)
    page.wait_for_function("() => window.location.search.includes('c1_lr=')", timeout=30_000)
    shown = lr.get_attribute("aria-valuetext")
    in_link = page.evaluate("() => new URLSearchParams(window.location.search).get('c1_lr')")
    assert float(shown) == float(in_link) < 5e-5
    assert page.get_by_text("diverged at step").count() == 0
    assert_no_exception(page)


def _downloaded_csv(page) -> str:
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Download paths and losses (CSV)").click()
    return open(download.value.path(), encoding="utf-8").read()


def test_the_csv_download_holds_the_paths_of_the_step_size_shown(app_url, page):
    """The download is drawn by the full run, outside the step-size fragment, and exports the
    runs the fragment showed last: after a slider move it must hold the new runs, exactly what
    the page's own function makes of them, not the ones the page opened on."""
    from ui import valley as vs

    page.goto(f"{app_url}/valley-vs-bowl?c1_mode=same&c1_lr=0.00005&c1_epochs=30&c1_map=0")
    page.get_by_role("button", name="Download paths and losses (CSV)").wait_for(timeout=60_000)
    settle(page)
    runs = page.evaluate("() => window.__bnRuns")
    before = _downloaded_csv(page)
    page.wait_for_timeout(500)
    assert page.evaluate("() => window.__bnRuns") == runs  # the click started no run of the page
    slider = page.get_by_role("slider", name="learning rate α")
    slider.focus()
    slider.press("ArrowRight")  # 5e-5 -> 7e-5
    settle(page)
    page.wait_for_function("() => window.location.search.includes('c1_lr=7e-05')", timeout=30_000)
    after = _downloaded_csv(page)
    seed_data = ("seed", 42, 100, 0.1)  # the page's default data: seed 42, n = 100, noise 0.1

    def expected(lr):
        return vs.history_csv({v: vs.variant_view(seed_data, 42, v, lr, 100, 30, "gd", 0.9, 0.9, 0.999).result
                               for v in ("raw", "standardized")})

    assert before == expected(5e-5)
    assert after == expected(7e-5) != before
    assert_no_exception(page)
