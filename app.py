"""BatchNorm Lab: the home page (Streamlit's entry point; the chapters are in ``pages/``).

The chapters use Streamlit's own ``pages/`` multipage layout, without ``st.navigation``: with
that layout a shared deep link such as ``/bn-step-by-step?c2_gamma=1.5`` opens the right page
on a freshly started server (``tests/browser/test_deep_links.py`` checks every chapter against
a fresh server per link), where ``st.navigation`` next to a ``pages/`` folder answered the
first request with "Page not found" (streamlit#9992). The automatic navigation is hidden
(``client.showSidebarNavigation = false``); :func:`ui.page.setup` draws the shared sidebar.
"""

import streamlit as st

from ui import course, home, page

page.setup(None)
home.forward_old_chapter_links()  # "/?c1_lr=..." was chapter 1's address before the home page
page.lead(
    "**See why normalization makes gradient descent fast, and where batch normalization "
    "breaks.** Every chart is computed live, as you move the sliders, by the lab's own NumPy "
    "implementation of the layers (the same arithmetic as PyTorch's), and every setting is in "
    "the page's link, so a teacher's link opens the same view on every student's laptop."
)

st.subheader("Chapters")
chapters = course.chapters()
for row in range(0, len(chapters), 3):
    for col, ch in zip(st.columns(3), chapters[row : row + 3], strict=False):
        with col.container(border=True):
            home.card(ch)

st.subheader("Lesson links")
st.markdown("Each opens one telling view of a chapter; the note says what to point at.")
for ch in chapters:
    home.lesson_links(ch)

with page.more("Teaching with it"):
    st.markdown(home.TEACHING)
