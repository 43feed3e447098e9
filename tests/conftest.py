"""Settings for the whole test session.

Chapter 3 trains in a pool of worker processes shared by every session and, after a cheap
run, queues the slider's other learning rates for idle workers (``ui/network.py``). In the test
suite nobody explores the slider afterwards, so those queued runs would only compete with the
tests for the two cores: ``BN_LAB_PREFETCH=0`` switches them off here, for the page tests and for
the servers the browser tests start (they inherit the environment). The pool itself is tested
in ``tests/test_parallel.py``, prefetching included.

**One xdist worker per chapter's cache.** Chapters 3-5 train networks, and a page's results are
cached per process (``st.cache_data``, the training pool): the first AppTest of chapter 4 in a
process trains its default sweep (35-63 s in the suite runs of 2026-12-02), the next ones read it. pytest-xdist's
``load`` mode spreads the tests of one chapter over both workers, so each trained the same
settings; ``--dist loadgroup`` would keep them together, but in pytest-xdist 3.8 with pytest 9
its ``xdist_group`` marks do nothing (it renames ``Item._nodeid``, which pytest 9 no longer
reads). So the scheduler below (used for plain ``-n N``) sends each chapter's AppTests to one
worker, and each chapter's browser tests to one worker's server (:func:`cache_group`), and
spreads every other test one at a time, as ``load`` does. Correctness does not rest on it:
each group's tests also pass in a plain ``pytest`` run of their file, without xdist.
"""

import os
import re

import pytest

os.environ.setdefault("BN_LAB_PREFETCH", "0")

#: Test files that open one chapter, and the chapter.
CHAPTER_OF_FILE = {
    "tests/test_page_network.py": 3, "tests/test_page_curse.py": 4, "tests/test_page_sequence.py": 5,
    "tests/browser/test_network.py": 3, "tests/browser/test_curse.py": 4, "tests/browser/test_sequence.py": 5,
}
#: Test files parametrized by chapter: the parameter id starts with its number (``[4]``,
#: ``[4-1]``) or names its page file (``[pages/4_curse-of-batch-norm.py]``).
BY_CHAPTER = ("tests/test_page_shell.py", "tests/test_app_pages.py", "tests/browser/test_first_screen.py")
_PARAM_CHAPTER = re.compile(r"\[(?:pages/)?(\d)(?:[-_\]])")
#: The chapters whose results are expensive enough to keep on one worker.
GROUPED = (3, 4, 5)


def cache_group(nodeid: str) -> str | None:
    """The scheduling group of a test: ``"apptest-chapter-4"``, ``"browser-chapter-4"``, or
    None for a test that may run on any worker."""
    path = nodeid.split("::", 1)[0]
    chapter = CHAPTER_OF_FILE.get(path)
    if chapter is None and path in BY_CHAPTER:
        match = _PARAM_CHAPTER.search(nodeid)
        chapter = int(match.group(1)) if match else None
    if chapter not in GROUPED:
        return None
    return f"{'browser' if path.startswith('tests/browser/') else 'apptest'}-chapter-{chapter}"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``-n N`` (dist mode ``load``): tests of one :func:`cache_group` on one worker."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ChapterScheduling(LoadScopeScheduling):
        """``loadscope`` with a scope per :func:`cache_group`, and one per other test. The
        largest scopes (by count) are handed out first."""

        def _split_scope(self, nodeid: str) -> str:
            return cache_group(nodeid) or nodeid

    return ChapterScheduling(config, log)
