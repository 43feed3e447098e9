"""Print the README's lesson links (the guided experiments of every chapter) as Markdown.

    .venv/bin/python -m scripts.lesson_links

The README's "Lesson links" list is this output, pasted between its two marker comments;
``tests/test_readme.py`` checks that it is current, so the README never names an experiment
the app does not have or a link that would not restore it.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from ui import course


def markdown() -> str:
    lines = []
    for ch in course.chapters():
        experiments, params = ch.experiments(), ch.params()
        if not experiments:
            continue
        lines.append(f"**{ch.title}**")
        lines.append("")
        for e in experiments:
            link = f"/{ch.url_path}?{urlencode(e.query(params, full=False))}"
            lines.append(f"- [{e.label}]({link}): {e.look_for}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    import streamlit  # noqa: F401  (configures its loggers; then quiet bare mode's "no runtime" notes)

    for name in ("streamlit.runtime.caching.cache_data_api", "streamlit.runtime.caching.cache_resource_api"):
        logging.getLogger(name).setLevel(logging.ERROR)
    print(markdown(), end="")
