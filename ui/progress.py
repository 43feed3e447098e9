"""The progress bar of a long cached core call, shared by every chapter.

Inside an ``st.cache_data`` function every ``bar.progress`` call is recorded and replayed on a
cache hit, so the callback updates the bar only when the fraction has moved by ``min_step``
(and once at 100 %): few replayed messages, whatever the core reports.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import streamlit as st

__all__ = ["progress_bar"]


def _throttled(bar, text: str, min_step: float) -> Callable[[float], None]:
    last = [-1.0]

    def update(fraction: float) -> None:
        f = float(min(max(fraction, 0.0), 1.0)) if np.isfinite(fraction) else 0.0
        if f - last[0] >= min_step or (f >= 1.0 > last[0]):
            last[0] = f
            bar.progress(f, text=f"{text} {100 * f:.0f} %")

    return update


@contextlib.contextmanager
def progress_bar(text: str, min_step: float = 0.02) -> Iterator[Callable[[float], None]]:
    """Draw ``st.progress`` labelled ``text``; yield its ``progress(fraction)`` callback; remove it.

    The callback clamps the fraction to [0, 1] (NaN counts as 0) and shows it as ``"text 42 %"``.
    The bar is removed when the block ends, also when it raises.
    """
    bar = st.progress(0.0, text=text)
    try:
        yield _throttled(bar, text, min_step)
    finally:
        bar.empty()
