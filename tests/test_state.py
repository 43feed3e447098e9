"""URL state: parsing, clamping and reporting of every kind of bad value, and the round trip."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st_
from streamlit.testing.v1 import AppTest

from ui import state as _state
from ui.state import BoolParam, ChoiceParam, FloatParam, IntParam, MultiChoiceParam

LR_OPTIONS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 3.0)
LR = FloatParam("lr", 0.01, 1e-6, 3.0, options=LR_OPTIONS, label="learning rate")
BS = IntParam("bs", 10, 1, 100, label="batch size")
OPT = ChoiceParam("opt", "gd", choices=("gd", "momentum", "adam"))
SHOW = BoolParam("show", True)
VARIANTS = MultiChoiceParam("v", ["raw", "standardized"], choices=("raw", "minmax", "standardized"))


@pytest.mark.parametrize("raw", ["abc", "", "nan", "NaN", "1e", "0x10", "[1]"])
def test_float_garbage_gives_default_and_message(raw):
    value, msg = LR.parse(raw)
    assert value == 0.01
    assert msg and "learning rate" in msg


@pytest.mark.parametrize(("raw", "expected"), [("inf", 3.0), ("1e308", 3.0), ("-5", 1e-6), ("0", 1e-6), ("-inf", 1e-6)])
def test_float_out_of_range_is_clamped_and_reported(raw, expected):
    value, msg = LR.parse(raw)
    assert value == expected
    assert msg and "outside" in msg


def test_float_snaps_to_nearest_option_in_log_space():
    value, msg = LR.parse("0.0004")  # log-nearest is 1e-3? |log 4e-4 - log 1e-3| = 0.92 < |log 4e-4 - log 1e-4| = 1.39
    assert value == 1e-3
    assert msg and "nearest" in msg
    assert LR.parse("0.0002") == (1e-4, LR.parse("0.0002")[1])


def test_valid_values_parse_silently():
    assert LR.parse("0.1") == (0.1, None)
    assert BS.parse("37") == (37, None)
    assert OPT.parse("Adam") == ("adam", None)
    assert SHOW.parse("off") == (False, None)
    assert VARIANTS.parse("minmax,raw") == (["raw", "minmax"], None)


@pytest.mark.parametrize(("raw", "expected"), [("0", 1), ("-3", 1), ("1e9", 100), ("inf", 100), ("7.6", 8), ("x", 10), ("nan", 10)])
def test_int_bad_values(raw, expected):
    value, msg = BS.parse(raw)
    assert value == expected
    assert isinstance(value, int)
    assert msg


def test_choice_bool_multichoice_bad_values():
    assert OPT.parse("rmsprop")[0] == "gd" and OPT.parse("rmsprop")[1]
    assert SHOW.parse("maybe")[0] is True and SHOW.parse("maybe")[1]
    assert VARIANTS.parse("bogus")[0] == ["raw", "standardized"]
    value, msg = VARIANTS.parse("raw,bogus")
    assert value == ["raw"] and "bogus" in msg


@given(st_.text(max_size=30))
def test_any_text_gives_a_valid_value(raw):
    for p in (LR, BS, OPT, SHOW, VARIANTS):
        value, _ = p.parse(raw)
        again, msg = p.parse(p.encode(value))
        assert again == value and msg is None
    v, _ = LR.parse(raw)
    assert v in LR_OPTIONS
    b, _ = BS.parse(raw)
    assert 1 <= b <= 100


@given(st_.floats(allow_nan=True, allow_infinity=True))
def test_any_float_is_clamped_into_range(x):
    v, _ = FloatParam("f", 0.5, 0.0, 1.0).parse(repr(x))
    assert 0.0 <= v <= 1.0 and not math.isnan(v)


def _script():
    import streamlit as st

    from ui import state
    from ui.state import FloatParam, IntParam

    params = [
        FloatParam("lr", 0.01, 1e-6, 3.0, options=(1e-6, 1e-4, 1e-2, 1.0, 3.0), label="learning rate"),
        IntParam("bs", 10, 1, 100, label="batch size"),
    ]
    notices = state.restore(params)
    st.select_slider("Learning rate", options=params[0].options, key="lr")
    st.slider("Batch size", 1, 100, key="bs")
    state.publish(params)
    state.show_notices(notices)


def test_restore_and_publish_round_trip_in_a_running_app():
    at = AppTest.from_function(_script)
    at.query_params["lr"] = "garbage"
    at.query_params["bs"] = "1e9"
    at.run()
    assert not at.exception
    assert at.select_slider[0].value == 0.01
    assert at.slider[0].value == 100
    warning = at.warning[0].value
    assert "learning rate" in warning and "batch size" in warning
    assert at.query_params["bs"] == ["100"] or at.query_params["bs"] == "100"
    at.slider[0].set_value(42).run()
    assert at.query_params["bs"] in (["42"], "42")
    assert not at.warning or "batch size" not in at.warning[0].value


def test_valid_url_restores_silently():
    at = AppTest.from_function(_script)
    at.query_params["lr"] = "1"
    at.query_params["bs"] = "7"
    at.run()
    assert at.select_slider[0].value == 1.0
    assert at.slider[0].value == 7
    assert not at.warning


def _gamma(at) -> float:
    return at.slider(key="c2_gamma").value


def test_leaving_a_chapter_and_coming_back_keeps_its_settings():
    """The sidebar's links carry no query string and Streamlit drops undrawn widgets' state:
    the kept copy must bring chapter 2's gamma back after a visit to chapter 1."""
    from tests.apptest import open_page

    at = open_page("pages/2_bn-step-by-step.py")
    assert _gamma(at) == 1.0
    at.slider(key="c2_gamma").set_value(1.5).run()
    at.switch_page("pages/1_valley-vs-bowl.py").run()
    assert not at.exception
    at.query_params.clear()  # what following the sidebar link does in the browser
    at.switch_page("pages/2_bn-step-by-step.py").run()
    assert not at.exception
    assert _gamma(at) == 1.5
    assert at.query_params["c2_gamma"] in ("1.5", ["1.5"])


def test_a_link_beats_the_kept_copy_and_reset_forgets_it():
    from tests.apptest import open_page

    at = open_page("pages/2_bn-step-by-step.py")
    at.slider(key="c2_gamma").set_value(1.5).run()
    at.switch_page("pages/1_valley-vs-bowl.py").run()
    at.query_params.clear()
    at.query_params["c2_gamma"] = "0.5"  # a link that names the value
    at.switch_page("pages/2_bn-step-by-step.py").run()
    assert _gamma(at) == 0.5
    at.button[0].click().run()  # the sidebar's "Reset this page to defaults"
    assert not at.exception
    assert _gamma(at) == 1.0


# --------------------------------------------------------------- item 4 of the truth issue



def test_a_very_long_url_value_is_quoted_short():
    p = _state.FloatParam("c1_lr", 0.01, lo=1e-6, hi=3.0, label="learning rate")
    value, msg = p.parse("x" * 5000)
    assert value == 0.01 and msg is not None
    assert len(msg) < 200 and "x" * (_state.ECHO_CHARS - 1) + "…" in msg and "x" * _state.ECHO_CHARS not in msg


def test_unknown_and_other_chapters_keys_are_named():
    notes = _state.unknown_keys(["c1_lr", "c2_gamma", "foo", "lecture", "k" * 300], ["c1_lr", "c1_frac"])
    assert len(notes) == 2
    assert "'c2_gamma' (chapter 2)" in notes[0] and "another chapter" in notes[0]
    assert "'foo'" in notes[1] and "not a setting of this page" in notes[1]
    assert "k" * _state.ECHO_CHARS not in notes[1]
    assert _state.unknown_keys(["c1_lr", "lecture"], ["c1_lr"]) == []


def test_a_link_with_unknown_keys_drops_them_and_says_so():
    from tests.apptest import open_page

    at = open_page("pages/2_bn-step-by-step.py", {"c2_gamma": "1.5", "c1_lr": "0.1", "zzz": "1"})
    assert not at.exception
    assert "c1_lr" not in at.query_params and "zzz" not in at.query_params
    assert at.query_params["c2_gamma"] == "1.5"
    text = " ".join(w.value for w in at.warning)
    assert "'c1_lr' (chapter 1)" in text and "'zzz'" in text


def test_control_characters_are_not_echoed():
    msg = _state.ChoiceParam("c2_mode", "train", choices=("train", "eval")).parse("a\x00b\nc")[1]
    assert "\x00" not in msg and "\n" not in msg and "a�b�c" in msg
