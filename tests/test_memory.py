"""ui.memory: the heap is frozen once per page, so Streamlit's post-run collection stays cheap."""

import gc

from ui import memory


def test_freeze_happens_once_per_page_and_moves_objects_to_the_permanent_generation():
    gc.unfreeze()
    memory._frozen_pages.clear()
    try:
        assert gc.get_freeze_count() == 0
        assert memory.freeze_after_first_run("page-a") is True
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # the interpreter, pytest and numpy alone are far more than that
        assert memory.freeze_after_first_run("page-a") is False  # second run of the same page
        assert gc.get_freeze_count() == frozen
        junk = [[i] for i in range(5000)]  # new objects are not frozen by a repeated call
        assert memory.freeze_after_first_run("page-a") is False
        assert gc.get_freeze_count() == frozen
        assert memory.freeze_after_first_run("page-b") is True  # another page's first run
        assert gc.get_freeze_count() >= frozen + len(junk)
    finally:
        gc.unfreeze()
        memory._frozen_pages.clear()


def test_pages_freeze_at_the_start_of_their_second_run_only():
    gc.unfreeze()
    memory._frozen_pages.clear()
    memory._seen_pages.clear()
    try:
        assert memory.freeze_from_second_run("pages/x.py") is False  # first run: nothing yet
        assert gc.get_freeze_count() == 0
        assert memory.freeze_from_second_run("pages/x.py") is True  # second run: freeze once
        frozen = gc.get_freeze_count()
        assert frozen > 1000
        assert memory.freeze_from_second_run("pages/x.py") is False
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
        memory._frozen_pages.clear()
        memory._seen_pages.clear()
