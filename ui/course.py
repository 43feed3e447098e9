"""The course as data: one row per chapter, read by the shared sidebar and the home page.

A chapter appears in the navigation and on the home page as soon as its page file exists,
so a chapter that has not landed yet is never linked. Its guided experiments (the "Try this"
buttons, which double as the home page's lesson links) are the ``EXPERIMENTS`` table of the
chapter's ui module, imported only when the home page lists them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The home page's file (Streamlit's entry point; its URL is ``/``).
HOME = "app.py"


@dataclass(frozen=True)
class Chapter:
    """One chapter of the course.

    Attributes
    ----------
    number : int
        1-based chapter number (also the URL prefix ``c<number>_`` of its settings).
    title : str
        The title shown as the page heading and in the navigation, e.g. ``"1 · Valley vs bowl"``.
    file : str
        The page script, relative to the repository root (``pages/<n>_<url-path>.py``).
    icon : str
        A Material Symbols short code (the font ships with Streamlit; nothing is fetched).
    sees : str
        What a student will see, in one sentence (the home page's card).
    minutes : int
        About how long the chapter takes in a lecture.
    ui_module : str
        The chapter's ui module, which declares ``PARAMS`` and ``EXPERIMENTS``.
    key_controls : tuple of str
        Labels of the chapter's key control(s): the sidebar's first widgets, on a projector's
        first screen with the main chart (``tests/browser/test_first_screen.py``).
    """

    number: int
    title: str
    file: str
    icon: str
    sees: str
    minutes: int
    ui_module: str
    key_controls: tuple[str, ...] = ()

    @property
    def url_path(self) -> str:
        """The page's URL path without the leading slash: the file name after ``<n>_``."""
        return Path(self.file).stem.split("_", 1)[1]

    @property
    def prefix(self) -> str:
        """The URL prefix of this chapter's settings, e.g. ``"c1_"``."""
        return f"c{self.number}_"

    @property
    def thumbnail(self) -> Path:
        """A small picture of the chapter's main chart (made by ``scripts/screenshots.py``)."""
        return ROOT / "data" / "thumbnails" / f"chapter{self.number}.png"

    def exists(self) -> bool:
        return (ROOT / self.file).is_file()

    def experiments(self) -> list:
        """The chapter's guided experiments (``EXPERIMENTS`` of its ui module), or ``[]``."""
        return list(getattr(importlib.import_module(self.ui_module), "EXPERIMENTS", []))

    def params(self) -> list:
        """The chapter's URL parameters (``PARAMS`` of its ui module)."""
        return list(getattr(importlib.import_module(self.ui_module), "PARAMS", []))


ALL_CHAPTERS = (
    Chapter(1, "1 · Valley vs bowl", "pages/1_valley-vs-bowl.py", ":material/landscape:",
            "A narrow valley on raw inputs, a round bowl standardized: the same gradient descent "
            "crawls or converges, with the Hessian's theory beside it.", 15, "ui.valley",
            ("fraction of 2/λ_max",)),
    Chapter(2, "2 · Batch norm, step by step", "pages/2_bn-step-by-step.py", ":material/stairs:",
            "One mini-batch through mean, variance, normalize, scale and shift; training vs "
            "evaluation mode and the running statistics.", 15, "ui.stepbystep",
            ("batch size m (samples)", "gamma γ (scale)")),
    Chapter(3, "3 · Batch norm in a network", "pages/3_bn-in-network.py", ":material/hub:",
            "Two copies of one network learn the digits side by side, with and without batch "
            "norm: faster, higher, and stable at large learning rates.", 20, "ui.network",
            ("Learning rate",)),
    Chapter(4, "4 · The curse of batch norm", "pages/4_curse-of-batch-norm.py",
            ":material/warning:",
            "Where batch norm breaks (small batches, class-sorted batches, a batch of one, the "
            "train/inference gap), measured beside LayerNorm, GroupNorm and Batch Renorm.", 25,
            "ui.curse", ("Batch size",)),
    Chapter(5, "5 · Sequence models", "pages/5_sequence-models.py", ":material/timeline:",
            "A recurrent network with batch norm per time step against layer norm, on longer "
            "sequences than it was trained on.", 20, "ui.sequence",
            key_controls=("Batch size", "Training length T")),
)


def chapters() -> list[Chapter]:
    """The chapters whose page file exists, in order."""
    return [c for c in ALL_CHAPTERS if c.exists()]


def chapter(number: int) -> Chapter:
    """The chapter with this number (whether or not its file exists yet)."""
    for c in ALL_CHAPTERS:
        if c.number == number:
            return c
    raise KeyError(f"no chapter {number}")
