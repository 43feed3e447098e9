"""The "show the code" panels: the source of a core function, read once per process.

``inspect.getsource`` reads and tokenizes the file on every call (4-11 ms per chapter rerun
here), and an expander's body runs on every rerun even when it is closed.
"""

from __future__ import annotations

import functools
import inspect


@functools.lru_cache(maxsize=32)
def source(obj) -> str:
    """``inspect.getsource(obj)``, cached (the core's source does not change while the app runs)."""
    return inspect.getsource(obj)
