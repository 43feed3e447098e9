"""Keep Python's cycle collector off the rerun path.

After every script run Streamlit calls ``gc.collect(2)`` (its ``runner.postScriptGC`` option):
a full collection that walks every object the process tracks, here the hundreds of thousands
that Streamlit, Plotly, pandas, SciPy and scikit-learn create on import and that live as long
as the server. The collection holds the GIL, so the rerun's last messages wait for it. Measured
with ``benchmarks/bench_rerun_server.py`` against a real server (see the README's benchmark
table): that collection was about half of a chapter-1 rerun. The ``AppTest`` benchmark never saw
it, because ``AppTest`` does not collect after a run.

:func:`freeze_after_first_run` collects once and then moves every object still alive into the
permanent generation (:func:`gc.freeze`), once per page and process, after that page's first
run (so its imports are included). Later collections, the post-script one and the automatic
ones, only walk objects created since. Frozen objects are still freed by reference counting
as usual; only a reference cycle among them would never be collected, and the frozen objects
are modules, classes and caches, which are never garbage.
"""

from __future__ import annotations

import gc

_frozen_pages: set[str] = set()


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
