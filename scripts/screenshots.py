"""Refresh the pictures of the course: the README's screenshots and the home page's thumbnails.

    .venv/bin/python -m scripts.screenshots

Starts ``streamlit run app.py`` on 127.0.0.1 (as the browser tests do) and, in Debian's
Chromium, opens the home page and every chapter at 1280 x 720 (a projector), waits until
the page has finished running, and saves

* ``docs/screenshots/home.png`` and ``docs/screenshots/chapter<N>.png``: the first screen, as a
  projector shows it before anyone scrolls (linked from the README's "Teaching with it");
* ``data/thumbnails/chapter<N>.png``: the top of the chapter's main chart (its first chart),
  480 px wide and at most 300 px high, shown on the home page's chapter card.

Nothing else is written. Run it after a change to what a chapter's first screen shows.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, settle, start_server, stop_server
from ui import course

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "docs" / "screenshots"
THUMB_WIDTH = 480


def main() -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    (ROOT / "data" / "thumbnails").mkdir(parents=True, exist_ok=True)
    proc, url = start_server()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            for ch in course.chapters():
                page.goto(f"{url}/{ch.url_path}")
                page.get_by_role("heading", name=ch.title).wait_for(timeout=90_000)
                chart = page.locator(".js-plotly-plot").first
                chart.wait_for(timeout=180_000)
                settle(page)
                page.wait_for_timeout(1500)  # Plotly's last relayout
                shot = SHOTS / f"chapter{ch.number}.png"
                page.screenshot(path=shot)
                image = Image.open(io.BytesIO(chart.screenshot())).convert("RGB")
                # one shape for every card: the chart's top (title and plot), 16:10
                image = image.crop((0, 0, image.width, min(image.height, round(image.width * 0.625))))
                height = round(image.height * THUMB_WIDTH / image.width)
                image.resize((THUMB_WIDTH, height), Image.LANCZOS).save(ch.thumbnail, optimize=True)
                print(shot, ch.thumbnail)
            page.goto(url)  # last, so that it shows the pictures just made
            page.get_by_role("heading", name="BatchNorm Lab", exact=True).wait_for(timeout=90_000)
            settle(page)
            page.wait_for_timeout(1000)
            page.screenshot(path=SHOTS / "home.png")
            print(SHOTS / "home.png")
            browser.close()
    finally:
        stop_server(proc)


if __name__ == "__main__":
    main()
