"""ui.page and ui.course: the shared sidebar, lecture mode, guided experiments, the home page."""

import ast
import threading
import time
from pathlib import Path

import pytest

from tests.apptest import HOME, chart_specs, open_page
from ui import course, page, state


def test_course_url_paths_and_prefixes_follow_the_file_names():
    ch = course.chapter(2)
    assert ch.url_path == "bn-step-by-step" and ch.prefix == "c2_"
    assert [c.number for c in course.chapters()] == sorted(c.number for c in course.chapters())
    assert course.chapter(1).exists()


def test_experiment_config_resets_what_it_does_not_name_and_encodes_every_param():
    params = [state.IntParam("c9_a", 3, lo=0, hi=10), state.FloatParam("c9_b", 0.5, lo=0, hi=1)]
    e = page.Experiment("b high", "look", {"c9_b": 0.9})
    assert e.config(params) == {"c9_a": 3, "c9_b": 0.9}
    assert e.query(params) == {"c9_a": "3", "c9_b": "0.9"}


def test_lecture_spec_enlarges_every_axis_and_the_title_and_keeps_the_data():
    spec = {"data": [{"x": [1, 2]}], "layout": {"title": {"text": "T"}, "xaxis": {"title": {"text": "x"}},
                                                  "yaxis2": {"tickfont": {"family": "mono"}}}}
    normal, big = page.lecture_spec(spec, False), page.lecture_spec(spec, True)
    assert big["data"] is spec["data"]
    assert big["layout"]["font"]["size"] > normal["layout"]["font"]["size"] >= 14
    assert big["layout"]["title"]["font"]["size"] > normal["layout"]["title"]["font"]["size"]
    assert big["layout"]["xaxis"]["title"]["font"]["size"] == page.FONT[True][0]
    assert big["layout"]["yaxis2"]["tickfont"] == {"family": "mono", "size": page.FONT[True][0],
                                                    "color": page.TEXT_COLOR}
    assert "font" not in spec["layout"]  # the cached spec is not modified


def _chart_font_sizes(at):
    return [spec["layout"]["font"]["size"] for spec in chart_specs(at)]


def test_lecture_mode_from_the_link_enlarges_chart_fonts_and_stays_in_the_link():
    normal = open_page(course.chapter(2).file)
    lecture = open_page(course.chapter(2).file, {"lecture": "1"})
    assert not lecture.exception
    assert set(_chart_font_sizes(normal)) == {page.FONT[False][0]}
    assert set(_chart_font_sizes(lecture)) == {page.FONT[True][0]}
    assert lecture.query_params["lecture"] == "1"
    assert lecture.toggle(key="lecture").value is True


def test_the_sidebar_links_home_and_every_chapter():
    at = open_page(HOME)
    assert not at.exception
    links = [(el.proto.page, el.proto.label) for el in at.sidebar.get("page_link")]
    assert links == [("", "BatchNorm Lab · home")] + [(c.url_path, c.title) for c in course.chapters()]


@pytest.mark.parametrize("chapter", [c.number for c in course.chapters()])
def test_every_chapter_opens_with_its_title_and_the_shared_sidebar(chapter):
    ch = course.chapter(chapter)
    at = open_page(ch.file)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == ch.title
    assert at.sidebar.toggle(key="lecture") is not None


@pytest.mark.parametrize("chapter", [c.number for c in course.chapters()])
def test_every_guided_experiment_is_valid_and_restorable_from_its_lesson_link(chapter):
    ch = course.chapter(chapter)
    params = {p.key: p for p in ch.params()}
    for e in ch.experiments():
        assert 3 <= len(e.label) <= 40 and e.look_for.endswith("."), e
        for key, value in e.settings.items():
            assert key in params, f"{e.label}: {key} is not a setting of chapter {chapter}"
            parsed, msg = params[key].parse(params[key].encode(value))
            assert msg is None and parsed == state.stored(value), (e.label, key, value, parsed, msg)


LESSONS = [(c.number, i) for c in course.chapters() for i in range(len(c.experiments()))]


@pytest.mark.parametrize(("chapter", "index"), LESSONS)
def test_every_lesson_link_opens_its_view_without_an_adjusted_setting(chapter, index):
    """The home page's lesson link of each guided experiment restores exactly its settings."""
    ch = course.chapter(chapter)
    e = ch.experiments()[index]
    query = e.query(ch.params(), index=index)
    at = open_page(ch.file, query, timeout=240)
    assert not at.exception, [x.value for x in at.exception]
    adjusted = [w.value for w in at.warning if "settings in the link were adjusted" in w.value]
    assert not adjusted, f"{e.label}: {adjusted}"
    for key, value in e.config(ch.params()).items():
        assert at.session_state[key] == value, (e.label, key)
    notes = [i.value for i in at.sidebar.info]
    assert any(e.look_for in n for n in notes), f"{e.label}: the link did not show its note: {notes}"
    assert "try" not in at.query_params  # read once; the note then follows the controls


def test_a_bad_experiment_number_in_a_link_is_named_and_shows_no_note():
    ch = course.chapter(2)
    at = open_page(ch.file, {"try": "99"})
    assert not at.exception
    assert any("guided experiment" in w.value and "99" in w.value for w in at.warning)
    last = ch.experiments()[-1]
    assert not any(last.look_for in i.value for i in at.sidebar.info)  # clamped, but settings differ


def test_lecture_spec_uses_the_figures_own_lecture_settings_and_makes_room_below_the_plot():
    from ui.theme import LECTURE_LAYOUT, LECTURE_TITLE

    layout = {"title": {"text": "raw: loss landscape and path"}, "height": 500,
              "margin": {"t": 64, "b": 190, "l": 64, "r": 10}, "xaxis": {"range": [0, 1]},
              "updatemenus": [{"y": -0.22, "buttons": []}], "sliders": [{"y": -0.22, "steps": []}],
              "legend": {"y": -0.6}, "meta": {LECTURE_TITLE: "raw", LECTURE_LAYOUT: {"xaxis": {"nticks": 4}}}}
    spec = {"data": [], "layout": layout}
    normal = page.lecture_spec(spec, False)["layout"]
    assert normal["title"]["text"] == "raw: loss landscape and path" and "nticks" not in normal["xaxis"]
    assert normal["height"] == 500 and normal["updatemenus"][0]["y"] == -0.22
    assert "meta" not in normal  # the lecture-only settings stay on the server

    big = page.lecture_spec(spec, True)["layout"]
    assert big["title"]["text"] == "raw" and "meta" not in big
    kept = page.lecture_spec({"data": [], "layout": {"meta": {"other": 1, LECTURE_TITLE: "t"}}}, True)
    assert kept["layout"]["meta"] == {"other": 1}
    assert big["xaxis"] == {"range": [0, 1], "nticks": 4, "tickfont": big["xaxis"]["tickfont"]}
    grown = big["height"] - 500
    assert grown > 0 and big["margin"]["b"] == 190 + grown  # the plot keeps its 246 px
    plot_h = 500 - 64 - 190
    for key in ("updatemenus", "sliders"):  # moved down by exactly the added pixels
        assert big[key][0]["y"] == pytest.approx(-0.22 - grown / plot_h)
    assert big["legend"]["y"] == pytest.approx(-0.6 - grown / plot_h)
    assert layout["height"] == 500 and layout["updatemenus"][0]["y"] == -0.22  # the input is not modified

    plain = page.lecture_spec({"data": [], "layout": {"title": {"text": "t"}, "height": 400,
                                                       "legend": {"y": -0.3}}}, True)["layout"]
    assert plain["height"] == 400 and plain["legend"]["y"] == -0.3  # nothing below to move: unchanged


class _CountingLock:
    """Stands in for ``page._TURN``: a lock that counts the turns taken."""

    def __init__(self):
        self.lock, self.taken = threading.Lock(), 0

    def acquire(self, timeout=-1):
        got = self.lock.acquire(timeout=timeout)
        self.taken += got
        return got

    def release(self):
        self.lock.release()


def test_in_turn_runs_sessions_one_after_another_and_waits_a_bounded_time():
    order, started, failures = [], threading.Event(), []

    def session(name, hold_s, wait_s=None):
        try:
            with page.in_turn(wait_s) as got:
                started.set()
                order.append((name, "in", got))
                time.sleep(hold_s)
                order.append((name, "out", got))
        except BaseException as exc:  # noqa: BLE001 - a thread's failure fails the test below
            failures.append(exc)

    first = threading.Thread(target=session, args=("a", 0.3))
    first.start()
    started.wait(5)
    second = threading.Thread(target=session, args=("b", 0.0))
    second.start()
    first.join(5)
    second.join(5)
    assert order == [("a", "in", True), ("a", "out", True), ("b", "in", True), ("b", "out", True)]
    assert not page._TURN.locked()

    # a turn longer than the wait: the waiting session goes ahead after wait_s, without a turn
    order.clear()
    started.clear()
    slow = threading.Thread(target=session, args=("slow", 1.0))
    slow.start()
    started.wait(5)
    t0 = time.perf_counter()
    session("impatient", 0.0, wait_s=0.2)
    waited = time.perf_counter() - t0
    assert page._TURN.locked()  # the impatient session did not release the slow one's turn
    slow.join(5)
    assert 0.15 < waited < 0.8 and ("impatient", "in", False) in order
    assert order.index(("impatient", "in", False)) < order.index(("slow", "out", True))
    assert not failures and not page._TURN.locked()

    with pytest.raises(RuntimeError), page.in_turn():  # an interrupted rerun ends its turn
        raise RuntimeError("a newer slider move")
    with page.in_turn(0) as got:
        assert got


def test_chapter_1_s_step_size_fragment_takes_its_turn_inside_the_fragment(monkeypatch):
    # the order of the decorators: @page.in_turn() above @st.fragment would take the turn only
    # on full runs (AppTest reruns whole scripts, so only the source shows it)
    tree = ast.parse((Path(__file__).resolve().parents[1] / "pages" / "1_valley-vs-bowl.py").read_text())
    (fn,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "step_size_and_results"]
    assert [ast.unparse(d) for d in fn.decorator_list] == ["st.fragment", "page.in_turn()"]

    counting = _CountingLock()
    monkeypatch.setattr(page, "_TURN", counting)
    at = open_page("pages/1_valley-vs-bowl.py")
    assert not at.exception and counting.taken == 1
    at.select_slider(key="c1_frac").set_value(0.9).run()
    assert not at.exception and counting.taken == 2
    assert not counting.lock.locked()
