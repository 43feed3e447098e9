"""The home page's parts: chapter cards, lesson links, and forwarding of old chapter-1 links."""

from __future__ import annotations

import streamlit as st

from ui import course

TEACHING = """\
- **Project a chapter** and switch on *Lecture mode* in the sidebar: chart text gets larger and
  the explanations fold away, leaving the title, one sentence, the controls and the charts.
- **Share the view**: every setting is in the address bar. Paste it into the chat and thirty
  laptops open the same chapter with the same settings.
- **Guided experiments**: each chapter's *Try this* buttons (listed below as lesson links) set
  the controls to one configuration and say in one sentence what to look for.
- **Reset**: *Reset this page to defaults* in the sidebar clears a chapter's settings.
"""


@st.cache_data(max_entries=8, show_spinner=False)
def _thumbnail(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def card(ch: course.Chapter) -> None:
    """One chapter's card: picture of its main chart, link, what a student sees, lecture time."""
    picture = _thumbnail(str(ch.thumbnail))
    if picture is not None:
        st.image(picture, width="stretch")
    st.page_link(ch.file, label=f"**{ch.title}**", icon=ch.icon)
    st.markdown(ch.sees)
    n = len(ch.experiments())
    st.caption(f"About {ch.minutes} minutes in a lecture"
               + (f" · {n} guided experiment{'s' * (n != 1)}" if n else ""))


def lesson_links(ch: course.Chapter) -> None:
    """The chapter's guided experiments as links that restore each one's view exactly."""
    experiments, params = ch.experiments(), ch.params()
    if not experiments:
        return
    st.markdown(f"**{ch.title}**")
    for e in experiments:
        left, right = st.columns([2, 5], vertical_alignment="center")
        left.page_link(ch.file, label=e.label, icon=":material/play_circle:",
                       query_params=e.query(params))
        right.markdown(e.look_for)


def forward_old_chapter_links() -> None:
    """Before the home page existed, chapter 1 was served at ``/``: send such a link on.

    A link at ``/`` whose settings all have one chapter's prefix opens that chapter with them.
    """
    keys = [k for k in st.query_params.keys() if k != "lecture"]
    heads = {k.split("_", 1)[0] for k in keys}
    if len(heads) != 1:
        return
    head = heads.pop()
    for ch in course.chapters():
        if head == ch.prefix[:-1]:
            st.switch_page(ch.file, query_params=st.query_params.to_dict())
