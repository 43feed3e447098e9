"""BatchNorm Lab: the router. One navigation call, the shared sidebar, and ``page.run()``.

The chapter files live in ``chapters/``, not ``pages/``: Streamlit treats a ``pages/`` folder
as the legacy multipage layout, and with it present a shared deep link such as
``/bn-step-by-step`` opened on a freshly started server shows a "Page not found" dialog over
the right page (streamlit#9992, #8860); without the folder the link opens cleanly.
"""

import streamlit as st

from ui import memory, state

st.set_page_config(page_title="BatchNorm Lab", page_icon=":material/insights:", layout="wide")

PAGES = [
    st.Page("chapters/valley_vs_bowl.py", title="1 · Valley vs bowl", icon=":material/landscape:",
            url_path="valley-vs-bowl", default=True),
    st.Page("chapters/bn_step_by_step.py", title="2 · Batch norm, step by step",
            icon=":material/stairs:", url_path="bn-step-by-step"),
    st.Page("chapters/bn_in_network.py", title="3 · Batch norm in a network",
            icon=":material/hub:", url_path="bn-in-network"),
]

page = st.navigation(PAGES)

with st.sidebar:
    st.markdown("**BatchNorm Lab**: see why normalization makes gradient descent fast, "
                "and where batch normalization breaks.")
    st.caption("Every setting is in the page's link: copy the address bar to share this exact view.")
    state.reset_button()
    st.divider()

page.run()
# Once per page and process: keeps Python's full (generation-2) collections off the rerun path (ui/memory.py).
memory.freeze_after_first_run(page.url_path)
