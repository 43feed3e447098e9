"""Shareable URL state: every control of a chapter is a :class:`Param`, mirrored in the URL.

A page declares its controls once, as a list of params, and calls

.. code-block:: python

    PARAMS = [FloatParam("lr", 0.01, 1e-6, 3.0, options=LR_OPTIONS), IntParam("seed", 42, 0, 10_000)]
    notices = state.restore(PARAMS)   # before the widgets: URL -> session_state (validated)
    ...widgets created with key=param.key and no value=...
    state.publish(PARAMS)             # after the widgets: session_state -> URL
    state.show_notices(notices)

The parsing and clamping (``Param.parse``) is pure and unit-tested without a server; only
:func:`restore`, :func:`publish`, :func:`show_notices` and :func:`reset_button` touch
Streamlit. A value that is missing from the URL takes the default silently; a value that is
present but invalid (garbage, NaN, inf, out of range, unknown choice) is replaced by the
nearest valid value, and the page says what it changed.

Widgets must be created with ``key=param.key`` and without ``value=``/``index=``: the
session state is their single source of truth, which is what makes a shared link restore
exactly the same view.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import streamlit as st

_REGISTRY_KEY = "_url_params_of_current_page"
KEPT_PREFIX = "_kept_"  # non-widget copies of each value, which survive leaving the page


@dataclass(frozen=True)
class Param:
    """Base class: a named, typed, validated control value mirrored in the URL."""

    key: str
    default: object
    label: str = field(default="", kw_only=True)

    def parse(self, raw: str) -> tuple[object, str | None]:  # pragma: no cover - abstract
        """Return ``(value, message)``; ``message`` is None when ``raw`` was valid as given."""
        raise NotImplementedError

    def encode(self, value: object) -> str:
        """The URL text of ``value`` (``parse(encode(v))`` returns ``(v, None)``)."""
        return str(value)

    @property
    def name(self) -> str:
        return self.label or self.key


#: How much of a URL value a message quotes; longer values are cut with an ellipsis.
ECHO_CHARS = 40


def echo(raw: object) -> str:
    """``raw`` as a message quotes it: at most :data:`ECHO_CHARS` characters."""
    text = "".join(c if c.isprintable() else "�" for c in str(raw))  # no NUL or newline in a message
    return text if len(text) <= ECHO_CHARS else text[: ECHO_CHARS - 1] + "…"


def _float_or_none(raw: str) -> float | None:
    try:
        return float(str(raw).strip())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class FloatParam(Param):
    """A real number in ``[lo, hi]``; with ``options``, snapped to the nearest option.

    Snapping uses log distance when every option is positive (learning rates), so ``0.0011``
    snaps to ``0.001`` rather than to a far-away linear neighbour.
    """

    lo: float = -math.inf
    hi: float = math.inf
    options: tuple[float, ...] = field(default=())

    def _snap(self, x: float) -> float:
        if not self.options:
            return float(x)
        opts = self.options
        if all(o > 0 for o in opts) and x > 0:
            return min(opts, key=lambda o: abs(math.log(o) - math.log(x)))
        return min(opts, key=lambda o: abs(o - x))

    def parse(self, raw: str) -> tuple[object, str | None]:
        x = _float_or_none(raw)
        if x is None or math.isnan(x):
            return self.default, f"{self.name}: '{echo(raw)}' is not a number; using the default {self.encode(self.default)}."
        clamped = min(max(x, self.lo), self.hi)
        value = self._snap(clamped)
        if clamped != x:
            return value, f"{self.name}: {echo(raw)} is outside [{self.encode(self.lo)}, {self.encode(self.hi)}]; using {self.encode(value)}."
        if not math.isclose(value, x, rel_tol=1e-9, abs_tol=0.0):
            return value, f"{self.name}: {echo(raw)} is not one of the offered values; using the nearest, {self.encode(value)}."
        return value, None

    def encode(self, value: object) -> str:
        return f"{float(value):.6g}"


@dataclass(frozen=True)
class IntParam(Param):
    """A whole number in ``[lo, hi]``; a fractional value is rounded and reported."""

    lo: int = 0
    hi: int = 2**31 - 1

    def parse(self, raw: str) -> tuple[object, str | None]:
        x = _float_or_none(raw)
        if x is None or math.isnan(x):
            return self.default, f"{self.name}: '{echo(raw)}' is not a whole number; using the default {self.default}."
        clamped = min(max(x, self.lo), self.hi)
        value = int(round(clamped))
        if clamped != x:
            return value, f"{self.name}: {echo(raw)} is outside [{self.lo}, {self.hi}]; using {value}."
        if value != x:
            return value, f"{self.name}: {echo(raw)} is not a whole number; using {value}."
        return value, None

    def encode(self, value: object) -> str:
        return str(int(value))


@dataclass(frozen=True)
class ChoiceParam(Param):
    """One of a fixed set of strings (case-insensitive in the URL)."""

    choices: tuple[str, ...] = ()

    def parse(self, raw: str) -> tuple[object, str | None]:
        text = str(raw).strip()
        for c in self.choices:
            if text.lower() == c.lower():
                return c, None
        allowed = ", ".join(self.choices)
        return self.default, f"{self.name}: '{echo(raw)}' is not one of {allowed}; using {self.default}."


@dataclass(frozen=True)
class BoolParam(Param):
    """A switch: ``1/0``, ``true/false``, ``yes/no``, ``on/off`` are understood."""

    def parse(self, raw: str) -> tuple[object, str | None]:
        text = str(raw).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True, None
        if text in {"0", "false", "no", "off"}:
            return False, None
        return self.default, f"{self.name}: '{echo(raw)}' is not on/off; using {'on' if self.default else 'off'}."

    def encode(self, value: object) -> str:
        return "1" if value else "0"


@dataclass(frozen=True)
class MultiChoiceParam(Param):
    """A non-empty subset of ``choices``, comma-separated in the URL, in the order of ``choices``."""

    choices: tuple[str, ...] = ()
    min_count: int = 1

    def parse(self, raw: str) -> tuple[object, str | None]:
        items = [t.strip() for t in str(raw).split(",") if t.strip()]
        lookup = {c.lower(): c for c in self.choices}
        known = {lookup[t.lower()] for t in items if t.lower() in lookup}
        unknown = [t for t in items if t.lower() not in lookup]
        value = [c for c in self.choices if c in known]
        if len(value) < self.min_count:
            return list(self.default), f"{self.name}: '{echo(raw)}' names too few of {', '.join(self.choices)}; using the default."
        if unknown:
            return value, f"{self.name}: ignored unknown {echo(', '.join(unknown))}."
        return value, None

    def encode(self, value: object) -> str:
        return ",".join(value)


def stored(value: object) -> object:
    """A value as the session keeps it (a multiselect wants a list, not a tuple)."""
    return list(value) if isinstance(value, list | tuple) else value


def _fallback(p: Param) -> tuple[object, str | None]:
    """The value of ``p`` when the session has none: the URL's (parsed and clamped, with its
    message), else the copy kept when the user last saw this page, else the default."""
    raw = st.query_params.get(p.key)
    if raw is not None:
        return p.parse(raw)
    if KEPT_PREFIX + p.key in st.session_state:
        return st.session_state[KEPT_PREFIX + p.key], None
    return p.default, None


#: URL keys every page understands (not chapter settings): see ui/page.py.
GLOBAL_KEYS = ("lecture", "try")


def params_keys(params: Sequence[Param]) -> set[str]:
    """The URL keys a page with ``params`` understands: its own and the global ones."""
    return {p.key for p in params} | set(GLOBAL_KEYS)


def unknown_keys(url_keys, page_keys: Sequence[str]) -> list[str]:
    """Messages for URL keys that the page does not understand (pure; tested without a server).

    A key with another chapter's prefix (``c2_gamma`` on chapter 1) is named as that chapter's;
    anything else as unknown. Keys are quoted at most :data:`ECHO_CHARS` characters long.
    """
    known = set(page_keys) | set(GLOBAL_KEYS)
    own = {k.split("_", 1)[0] for k in page_keys if "_" in k}
    other, unknown = [], []
    for key in url_keys:
        if key in known:
            continue
        head = key.split("_", 1)[0]
        if "_" in key and head[:1] == "c" and head[1:].isdigit() and head not in own:
            other.append(f"'{echo(key)}' (chapter {int(head[1:])})")
        else:
            unknown.append(f"'{echo(key)}'")
    notes = []
    if other:
        notes.append(f"ignored {', '.join(other)}: a setting of another chapter, not of this page.")
    if unknown:
        notes.append(f"ignored {', '.join(unknown)}: not a setting of this page.")
    return notes


def restore(params: Sequence[Param]) -> list[str]:
    """Initialise ``st.session_state`` for ``params``; call before the widgets.

    Per parameter, a key already in the session state (the user moved a widget) is left
    alone; else :func:`_fallback` gives the value: the URL's, parsed and clamped, else the copy
    kept when the user last saw this page, else the default. URL keys that are not a setting
    of this page (:func:`unknown_keys`) are dropped from the link and named. Returns the
    messages for URL values that were invalid and changed, and for the keys dropped.
    """
    st.session_state[_REGISTRY_KEY] = [p.key for p in params]
    notices = unknown_keys(st.query_params.keys(), [p.key for p in params])
    for key in [k for k in st.query_params.keys() if k not in params_keys(params)]:
        del st.query_params[key]
    for p in params:
        if p.key in st.session_state:
            continue
        value, msg = _fallback(p)
        if msg:
            notices.append(msg)
        st.session_state[p.key] = stored(value)
    return notices


def hold(params: Sequence[Param]) -> None:
    """Keep the values of controls that this run does not draw (call instead of their widgets).

    A control shown only for one optimizer, say, is not drawn for the others. Streamlit then
    drops its widget value at the end of the run and falls back to whatever was last written to
    its key from code (the URL value or default that :func:`restore` set before the widget
    first appeared), so the user's choice would be lost. Writing the current value back to the
    key, in a run where the widget is not drawn (which Streamlit allows), makes it that
    fallback; a key that is already gone gets :func:`_fallback`'s value (which :func:`publish`
    kept in the URL). When the control is drawn again, it shows the user's choice.
    """
    ss = st.session_state
    for p in params:
        ss[p.key] = stored(ss[p.key] if p.key in ss else _fallback(p)[0])


def publish(params: Sequence[Param]) -> None:
    """Write the current values of ``params`` to the URL and keep a copy (after the widgets)."""
    changed = {}
    for p in params:
        if p.key in st.session_state:
            value = st.session_state[p.key]
            st.session_state[KEPT_PREFIX + p.key] = stored(value)
            text = p.encode(value)
            if st.query_params.get(p.key) != text:
                changed[p.key] = text
    if changed:  # one message to the browser, not one per setting (17 on chapter 1's first run)
        st.query_params.update(changed)


def show_notices(notices: Sequence[str]) -> None:
    """Tell the user which URL values were invalid and what was used instead."""
    if notices:
        st.warning("Some settings in the link were adjusted:\n\n" + "\n".join(f"- {m}" for m in notices))


def _reset_current_page() -> None:
    for key in st.session_state.get(_REGISTRY_KEY, []):
        st.session_state.pop(key, None)
        st.session_state.pop(KEPT_PREFIX + key, None)
    for key in [k for k in st.query_params.keys() if k not in GLOBAL_KEYS]:
        del st.query_params[key]  # the chapter's settings go; lecture mode stays


def reset_button() -> None:
    """A sidebar button that puts every control of the current page back to its default."""
    st.button(
        "Reset this page to defaults",
        on_click=_reset_current_page,
        help="Clears the settings in the link and restores the chapter's defaults.",
    )
