"""Every page of the course has one shape, and this module draws its shared parts.

.. code-block:: python

    from ui import page, state
    from ui import curse as cu

    page.setup(4)                                   # page config, shared sidebar, the title
    notices = state.restore(cu.PARAMS)
    with page.controls():                           # the sidebar, below the navigation
        ...widgets, the key control(s) first...
    page.guided(cu.EXPERIMENTS, cu.PARAMS)          # "Try this" buttons (a table of presets)
    state.publish(cu.PARAMS); state.show_notices(notices)
    page.lead("One sentence on what the chapter shows.")
    st.subheader("Small batches")
    page.chart(fig, key="c4-small")                 # lecture mode enlarges the fonts
    page.see(describe_small(record))                # one "what to see" line, from the chart's data
    with page.more("The formulas"):                 # longer explanations: an expander
        st.latex(...)
    page.prose("...")                               # explanatory prose, hidden in lecture mode

The sidebar always has the same order: the navigation (home and every chapter that exists,
:mod:`ui.course`), the chapter's controls, its "Try this" buttons, then the lecture-mode
switch, the reset button and a note that the link holds every setting. So a chapter's key
control sits in the same place on every page, high enough to be on a projector's first screen.

**Lecture mode** (``?lecture=1``, kept in the link) enlarges every chart's fonts and hides
the explanatory prose (:func:`prose`); titles, the one-sentence lead, the "what to see"
lines, the controls and the charts stay.
"""

from __future__ import annotations

import contextlib
import datetime
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import streamlit as st

from ui import course, memory, state
from ui import live_chart as charts
from ui.theme import LECTURE_LAYOUT, LECTURE_TITLE, FigureSpec

#: The favicon: an emoji, which Streamlit turns into an inline SVG (a Material icon would be
#: fetched from a font server by the browser, and nothing may be fetched from outside).
ICON = "📉"

#: Global (not chapter-prefixed) URL keys: lecture mode, and ``try=<n>``, which a lesson link
#: carries so the page shows the note of its n-th guided experiment.
LECTURE = state.BoolParam("lecture", False, label="lecture mode")
TRY = "try"
GLOBAL_PARAMS = (LECTURE,)

#: Chart fonts: (base, chart title) in pixels, normal and in lecture mode. The base size
#: applies to tick labels, axis titles and legends; dark text reads on a washed-out projector.
FONT = {False: (15, 18), True: (21, 25)}
#: The ``name`` of a Plotly annotation whose font lecture mode leaves alone (a label sized to
#: fit inside a drawn box).
FIXED_SIZE = "fixed-size"
TEXT_COLOR = "#1a1a1a"
#: The app's own font (Streamlit's "Source Sans", served by the app), so charts match the text.
FONT_FAMILY = '"Source Sans", sans-serif'

#: Less empty space above the title and the navigation, so that a projector's 720 pixels
#: hold the title, the lead sentence and the main chart (a style-only st.html takes no room).
_CSS = """<style>
[data-testid="stMainBlockContainer"] { padding-top: 2.5rem; }
[data-testid="stSidebarUserContent"] { padding-top: 0.5rem; }
</style>"""

_SLOTS = "_page_slots"
_GUIDED_NOTE = "_guided_note"
_LECTURE_PUBLISHED = "_lecture_published"


@dataclass(frozen=True)
class Experiment:
    """One guided experiment: a "Try this" button and a lesson link on the home page.

    Attributes
    ----------
    label : str
        The button text, e.g. ``"Batch size 2"``.
    look_for : str
        One sentence saying what to look for; it must hold for this configuration.
    settings : mapping of param key to value
        The controls this experiment sets; every other control of the chapter goes back to
        its default, so the experiment always shows the same view.
    """

    label: str
    look_for: str
    settings: Mapping[str, object] = field(default_factory=dict)

    def config(self, params: Sequence[state.Param]) -> dict[str, object]:
        """The value of every param of the chapter under this experiment."""
        return {p.key: state.stored(self.settings.get(p.key, p.default)) for p in params}

    def query(self, params: Sequence[state.Param], full: bool = True,
              index: int | None = None) -> dict[str, str]:
        """URL parameters that restore this experiment's view.

        ``full`` names every param (an in-app link: the session may hold other values);
        otherwise only the ones the experiment sets (a link opened in a new session, where
        every other control starts at its default). ``index``, the experiment's place in its
        chapter's table (0-based), adds ``try=<index + 1>``, so the page shows its note too.
        """
        by_key = {p.key: p for p in params}
        values = self.config(params) if full else {k: state.stored(v) for k, v in self.settings.items()}
        query = {k: by_key[k].encode(v) for k, v in values.items()}
        if index is not None:
            query[TRY] = str(index + 1)
        return query


def lecture() -> bool:
    """True when lecture mode is on."""
    return bool(st.session_state.get(LECTURE.key, False))


def _restore_lecture() -> None:
    """Session value of lecture mode: the link's when it changed since this page last wrote
    it (a shared link, a lesson link), else the session's own (the toggle)."""
    ss = st.session_state
    raw = st.query_params.get(LECTURE.key)
    in_url = LECTURE.parse(raw)[0] if raw is not None else None
    if LECTURE.key not in ss:
        ss[LECTURE.key] = bool(in_url)
    elif in_url is not None and in_url != ss.get(_LECTURE_PUBLISHED):
        ss[LECTURE.key] = in_url


def _publish_lecture() -> None:
    on = lecture()
    st.session_state[_LECTURE_PUBLISHED] = on
    if on:
        if st.query_params.get(LECTURE.key) != "1":
            st.query_params[LECTURE.key] = "1"
    elif LECTURE.key in st.query_params:
        del st.query_params[LECTURE.key]


def setup(chapter: int | None) -> None:
    """Configure the page, draw the shared sidebar and the page title.

    Parameters
    ----------
    chapter : int or None
        The chapter number (:data:`ui.course.ALL_CHAPTERS`), or None for the home page.
    """
    ch = course.chapter(chapter) if chapter is not None else None
    title = ch.title if ch else "BatchNorm Lab"
    st.set_page_config(page_title=f"{title} · BatchNorm Lab" if ch else title, page_icon=ICON,
                       layout="wide", initial_sidebar_state="expanded")
    memory.freeze_from_second_run(ch.file if ch else course.HOME)
    _restore_lecture()
    sidebar = st.sidebar
    with sidebar:
        st.page_link(course.HOME, label="BatchNorm Lab · home", icon=":material/home:")
        for c in course.chapters():
            st.page_link(c.file, label=c.title, icon=c.icon)
        st.divider()
        slots = {"controls": st.container(), "guided": st.container(), "footer": st.container()}
    st.session_state[_SLOTS] = slots
    with slots["footer"]:
        if ch is not None:
            st.divider()
        st.toggle("Lecture mode", key=LECTURE.key,
                  help="Larger chart text for a projector, explanations hidden. Kept in the link.")
        if ch is not None:
            state.reset_button()
        st.caption("Every setting is in the page's link: copy the address bar to share this view.")
    _publish_lecture()
    st.html(_CSS)
    st.title(title)


def _slot(name: str):
    slots = st.session_state.get(_SLOTS)
    return slots[name] if slots else st.sidebar


def controls():
    """The sidebar container for the chapter's controls (use as ``with page.controls():``)."""
    return _slot("controls")


def _apply(experiment: Experiment, params: Sequence[state.Param]) -> None:
    for key, value in experiment.config(params).items():
        st.session_state[key] = value
        st.session_state[state.KEPT_PREFIX + key] = value
    st.session_state[_GUIDED_NOTE] = experiment.label


def guided(experiments: Sequence[Experiment], params: Sequence[state.Param]) -> None:
    """Draw the "Try this" buttons in the sidebar and, under them, the "what to look for"
    sentence of the experiment last chosen (by its button or a lesson link's ``try=<n>``), as
    long as the controls still match it: after any change the sentence may no longer hold.

    The sentence sits in the sidebar, not above the chart, so that choosing an experiment
    never pushes the main chart off a projector's first screen.
    """
    if not experiments:
        return
    raw = st.query_params.get(TRY)
    if raw is not None:
        del st.query_params[TRY]  # read once; the note then follows the controls
        n, msg = state.IntParam(TRY, 0, lo=1, hi=len(experiments)).parse(raw)
        if msg is None:
            st.session_state[_GUIDED_NOTE] = experiments[n - 1].label
        else:
            st.warning(f"The link names guided experiment '{state.echo(raw)}', but this chapter has "
                       f"experiments 1 to {len(experiments)}; no experiment's note is shown.")
    prefix = params[0].key.split("_", 1)[0] if params else "page"
    with _slot("guided"):
        st.markdown("**Try this**")
        for i, e in enumerate(experiments):
            st.button(e.label, key=f"_guided_{prefix}_{i}", on_click=_apply, args=(e, params),
                      help=e.look_for, width="stretch")
        chosen = st.session_state.get(_GUIDED_NOTE)
        for e in experiments:
            if e.label == chosen:
                if all(st.session_state.get(k) == v for k, v in e.config(params).items()):
                    st.info(f"**{e.label}.** {e.look_for}", icon=":material/lightbulb:")
                break


def lead(text: str) -> None:
    """The chapter's one sentence under its title (shown in lecture mode too)."""
    st.markdown(text)


def prose(text: str) -> None:
    """Explanatory markdown, hidden in lecture mode."""
    if not lecture():
        st.markdown(text)


def more(label: str, expanded: bool = False):
    """An expander for formulas, derivations and code (collapsed unless ``expanded``)."""
    return st.expander(label, expanded=expanded)


def see(text: str, where=None) -> None:
    """The one "what to see" line under a chart (computed from the chart's data)."""
    (where or st).markdown(f":material/visibility: **What to see:** {text}")


def lecture_spec(spec: dict, big: bool) -> dict:
    """A copy of a Plotly spec with the house chart fonts (dark, larger in lecture mode).

    Only the top-level layout and the axis dicts are copied; data and frames are shared.
    """
    base, title_size = FONT[big]
    layout = dict(spec.get("layout", {}))
    meta = layout.pop("meta", None) or {}
    if rest := {k: v for k, v in meta.items() if k not in (LECTURE_TITLE, LECTURE_LAYOUT)}:
        layout["meta"] = rest  # the lecture-only settings are read here, not sent to the browser
    if big:  # the figure's own lecture-mode settings (see ui.theme.LECTURE_LAYOUT)
        for k, v in (meta.get(LECTURE_LAYOUT) or {}).items():
            layout[k] = {**layout[k], **v} if isinstance(v, dict) and isinstance(layout.get(k), dict) else v
    layout["font"] = {**layout.get("font", {}), "size": base, "color": TEXT_COLOR, "family": FONT_FAMILY}
    title = layout.get("title")
    if isinstance(title, dict):
        layout["title"] = {**title, "font": {**title.get("font", {}), "size": title_size, "weight": 600}}
        short = meta.get(LECTURE_TITLE) if big else None
        if short:
            layout["title"]["text"] = short
    if big:
        _make_room_below(layout, 4 * (FONT[True][0] - FONT[False][0]))
    for k, v in list(layout.items()):
        if isinstance(v, dict) and (k.startswith("xaxis") or k.startswith("yaxis")):
            axis = dict(v)
            axis["tickfont"] = {**axis.get("tickfont", {}), "size": base, "color": TEXT_COLOR}
            t = axis.get("title")
            if isinstance(t, dict):
                axis["title"] = {**t, "font": {**t.get("font", {}), "size": base, "color": TEXT_COLOR}}
            layout[k] = axis
    legend = layout.get("legend")
    if isinstance(legend, dict) or big:
        legend = dict(legend or {})
        legend["font"] = {**legend.get("font", {}), "size": base - 1, "color": TEXT_COLOR}
        layout["legend"] = legend
    if "annotations" in layout:
        # Labels inside a diagram's boxes (named FIXED_SIZE) keep their size: enlarged, they
        # overflowed their boxes and ran into each other (chapter 5's unrolled diagram).
        layout["annotations"] = [
            a if a.get("name") == FIXED_SIZE else
            {**a, "font": {**a.get("font", {}), "size": max(a.get("font", {}).get("size", 0), base - 2)}}
            for a in layout["annotations"]
        ]
    return {**spec, "layout": layout}


def cost_gate(seconds: float, threshold: float, warning: str, approved_key: str, approval: object,
              button: str, button_key: str) -> bool:
    """True if an expensive run may start: ``seconds`` within ``threshold``, or approved before.

    Otherwise show ``warning`` and a "``button`` (about N s)" button instead of training for
    minutes unannounced (e.g. a crafted link clamped to the largest network); pressing it stores
    ``approval`` (the configuration) under ``approved_key``, removes the warning and returns True.
    The same configuration then runs without asking again; any other asks again.
    """
    ss = st.session_state
    if seconds <= threshold or ss.get(approved_key) == approval:
        return True
    box = st.empty()
    with box.container():
        st.warning(warning, icon=":material/hourglass_top:")
        clicked = st.button(f"{button} (about {seconds:.0f} s)", key=button_key)
    if clicked:
        ss[approved_key] = approval
        box.empty()  # the run starts now: the warning and the button go
        return True
    return False


def _make_room_below(layout: dict, px: int) -> None:
    """Lecture mode: move play buttons, step sliders and the legend below a plot ``px`` lower.

    Only for a figure with buttons or sliders under its plot (chapter 1's landscapes): the
    larger tick labels and axis title push the axis title down by about ``px`` and it ran into
    the buttons. The figure grows by ``px`` so that the plot itself keeps its size.
    """
    below = [k for k in ("updatemenus", "sliders") if any(m.get("y", 0) < 0 for m in layout.get(k, []))]
    height, margin = layout.get("height"), layout.get("margin") or {}
    if not below or not height:
        return
    plot_h = height - margin.get("t", 0) - margin.get("b", 0)
    if plot_h <= 0:
        return
    dy = px / plot_h  # paper coordinates are fractions of the plot's height
    for k in below:
        layout[k] = [{**m, "y": m["y"] - dy} if m.get("y", 0) < 0 else m for m in layout[k]]
    legend = layout.get("legend")
    if isinstance(legend, dict) and legend.get("y", 0) < 0:
        layout["legend"] = {**legend, "y": legend["y"] - dy}
    layout["height"] = height + px
    layout["margin"] = {**margin, "b": margin.get("b", 0) + px}


#: The timer of :func:`rerun_when_reconnected`'s empty fragment: it only has to exist.
RECONNECT_WATCH_EVERY = datetime.timedelta(days=1)


@st.fragment(run_every=RECONNECT_WATCH_EVERY)
def _reconnect_watch() -> None:
    """Draws nothing (see :func:`rerun_when_reconnected`); its timed reruns cost almost nothing."""


def rerun_when_reconnected() -> None:
    """Make the browser rerun the whole page whenever its connection to the server comes back.

    For a page with an ``st.fragment`` (chapter 1). Streamlit 1.67's browser reruns the page
    after a reconnect only if a run was in progress or requested, if its last run was a
    fragment's, or if the page has a fragment on a timer (``handleConnectionStateChanged`` in
    its frontend). Otherwise a browser that reconnects to a *new* session (the server
    restarted, or its replica stopped and the proxy sent it to another) keeps the old page,
    and a widget drawn inside a fragment then moves without effect: the new session has
    never run that fragment and drops its reruns. Chapter 1's step-size slider would show a
    value the page does not use. This draws an empty fragment on a one-day timer, so every
    reconnect reruns the page: one full run per reconnect, also when the browser comes back
    to its own session (a laptop waking up). Call it early in the page: the browser forgets
    the timer at the start of every full run and learns it again only when the run gets here.
    ``tests/browser/test_deploy_failover.py`` moves the slider right after a failover and
    right after a restart.
    """
    _reconnect_watch()


#: Taken by :func:`in_turn`: one session at a time through a rerun's drawing, in this process.
_TURN = threading.Lock()
#: How long :func:`in_turn` waits for its turn before it goes ahead anyway [s].
TURN_WAIT_S = 1.0


@contextlib.contextmanager
def in_turn(wait_s: float | None = None):
    """Run what follows while no other session of this server process runs under ``in_turn``.

    Streamlit runs each session's script in its own thread of one Python process, and the
    process runs Python in one thread at a time. Thirty of chapter 1's step-size reruns that
    arrive together were interleaved, so every student's reply was complete only when nearly
    all were. In turn, their fragment code runs one session after another (Streamlit's own
    per-run work around it still interleaves). Measured with 30 simulated students moving at
    once (``benchmarks/st_client.py`` from a /tmp script, load 0.1-0.7, five runs each): median
    reply 179-229 ms before, 85-136 ms in turn; fastest reply 132-170 ms before, 7-11 ms in
    turn (in the four in-turn runs that printed it). In ``benchmarks/bench_classroom.py`` the
    lockstep moves went from p50 302 / p95 395 ms to p50 201 / p95 275 ms.

    A session waits at most ``wait_s`` seconds (default :data:`TURN_WAIT_S`) for its turn
    and then goes ahead anyway (interleaved, as without the turn), so a slow turn (chapter
    1's largest settings on a 500-row upload compute for ~3 s) delays the others by at most
    that; a burst of a class's fast reruns (~10 ms each) is over well before. A rerun that a
    newer slider move interrupts while it waits still waits for its turn, then stops at its
    first Streamlit call; the newer rerun queues again. An exception inside ends the turn.
    Yields whether this session got its turn. Also a decorator, below ``@st.fragment``.
    """
    got = _TURN.acquire(timeout=TURN_WAIT_S if wait_s is None else wait_s)
    try:
        yield got
    finally:
        if got:
            _TURN.release()


def chart(fig, *, key: str, where=None) -> None:
    """Draw a chart with the house fonts (larger in lecture mode), updated in place on reruns.

    ``fig`` is a :class:`ui.theme.FigureSpec` or a ``go.Figure``; ``where`` a container
    (default: the current one). The chart is a :func:`ui.live_chart.live_chart`, not an
    ``st.plotly_chart``: a new figure under the same ``key`` is redrawn with ``Plotly.react``
    instead of being rebuilt (see that module for why and what it costs).

    A FigureSpec is read-only, so its JSON is made once per figure and mode and kept with it
    (:meth:`ui.theme.FigureSpec.derived`): a class moving chapter 1's step size through the
    slider's values serializes each cached figure once, not once per student and move.
    """
    return charts.live_chart(chart_json(fig, lecture()), key=key, where=where)


def chart_json(fig, big: bool) -> bytes:
    """The JSON :func:`chart` sends for ``fig`` (lecture mode if ``big``); kept with a FigureSpec."""
    if isinstance(fig, FigureSpec):
        return fig.derived(("json", big), lambda: charts.figure_json(lecture_spec(fig.spec, big)))
    return charts.figure_json(lecture_spec(fig.to_plotly_json(), big))
