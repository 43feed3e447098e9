"""Keep Python's cycle collector off the rerun path.

A full (generation-2) collection walks every object the process tracks: here the ~150 000
that Streamlit, Plotly, pandas, SciPy and scikit-learn create on import and that live as long
as the server. It holds the GIL, so a rerun it falls into waits for it. Two things ran one:

* Streamlit, after every script run (its ``runner.postScriptGC`` option, now off in
  ``.streamlit/config.toml``). Measured with ``benchmarks/bench_rerun_server.py``: about half
  of a chapter-1 rerun (149-195 ms before, 50-90 ms with the heap frozen). The ``AppTest``
  benchmark never saw it: ``AppTest`` does not collect after a run.
* Python itself, whenever enough objects have survived. In 60 chapter-1 step-size reruns on
  one server (gc callbacks timing each generation-2 collection), one such collection fell
  among the reruns: 107 ms with the heap as it is, 7 ms with it frozen.

:func:`freeze_after_first_run` collects once (~100-130 ms, once per page and process) and then
moves every object still alive into the permanent generation (:func:`gc.freeze`), after that
page's first run so that its imports are included. Later collections only walk objects
created since. Frozen objects are still freed by reference counting as usual; only a
reference cycle among them would never be collected, and the frozen objects are modules,
classes and caches, which are never garbage.
"""

from __future__ import annotations

import gc

_frozen_pages: set[str] = set()
_seen_pages: set[str] = set()


def freeze_after_first_run(page: str) -> bool:
    """Collect and freeze the heap the first time ``page`` has run in this process.

    Returns True when it froze (the first call per page), False otherwise.
    """
    if page in _frozen_pages:
        return False
    _frozen_pages.add(page)
    gc.collect()
    gc.freeze()
    return True


def freeze_from_second_run(page: str) -> bool:
    """Call at the start of every run of ``page``: freezes once, when ``page`` starts its
    second run in this process (i.e. after its first run, imports and caches included).

    A page of Streamlit's ``pages/`` layout has no code that runs after the page, so the
    freeze that :func:`freeze_after_first_run` does "after the first run" happens at the start
    of the next one instead. Returns True when it froze.
    """
    if page not in _seen_pages:
        _seen_pages.add(page)
        return False
    return freeze_after_first_run(page)
