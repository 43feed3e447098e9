"""The test scheduler's groups (``tests/conftest.py``): each chapter's cached results stay on one
xdist worker, and a renamed test file cannot silently fall out of its group."""

from pathlib import Path

from tests.conftest import BY_CHAPTER, CHAPTER_OF_FILE, cache_group

ROOT = Path(__file__).resolve().parents[1]


def test_each_chapters_page_tests_share_a_group_and_other_tests_none():
    cases = {
        "tests/test_page_curse.py::test_defaults_draw_every_chart_finite_with_its_sentence": "apptest-chapter-4",
        "tests/test_page_shell.py::test_every_lesson_link_opens_its_view_without_an_adjusted_setting[4-1]":
            "apptest-chapter-4",
        "tests/test_app_pages.py::test_page_runs_with_defaults[pages/4_curse-of-batch-norm.py]": "apptest-chapter-4",
        "tests/test_page_shell.py::test_every_chapter_opens_with_its_title_and_the_shared_sidebar[5]":
            "apptest-chapter-5",
        "tests/test_page_network.py::test_anything": "apptest-chapter-3",
        "tests/browser/test_curse.py::test_deep_link": "browser-chapter-4",
        "tests/browser/test_first_screen.py::test_first_screen_shows_title_key_control_and_main_chart[3]":
            "browser-chapter-3",
        # cheap chapters, the home page, fresh-server tests and the core's tests: any worker
        "tests/test_page_shell.py::test_every_lesson_link_opens_its_view_without_an_adjusted_setting[1-4]": None,
        "tests/test_app_pages.py::test_page_runs_with_defaults[app.py]": None,
        "tests/browser/test_deep_links.py::test_first_request_of_a_fresh_server_opens_the_linked_chapter[4]": None,
        "tests/test_layers.py::test_batchnorm_backward[4-1]": None,
    }
    assert {nodeid: cache_group(nodeid) for nodeid in cases} == cases


def test_every_grouped_test_file_exists():
    for path in (*CHAPTER_OF_FILE, *BY_CHAPTER):
        assert (ROOT / path).is_file(), path
