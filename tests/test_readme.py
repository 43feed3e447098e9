"""The README's promises are kept: its test command is what CI runs, and its code example runs."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _fenced(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_the_two_commands():
    first_block = _fenced("bash")[0]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.split("#")[0].strip()]
    assert commands == ["bash scripts/run_app.sh", "bash scripts/run_tests.sh"]
    assert README.index(first_block) < README.index("## "), "the commands must come before any section"


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec bash scripts/run_tests.sh" in ci


def _examples() -> list[tuple[str, str]]:
    """Each ```python block that uses bn_core, with the ``` block printed right after it."""
    pairs = re.findall(r"```python\n(.*?)```.*?```\n(.*?)```", README, flags=re.S)
    return [(code, printed) for code, printed in pairs if "bn_core" in code]


def test_python_examples_print_what_the_readme_says():
    examples = _examples()
    assert len(examples) >= 4, "README should have the regression, network, chapter-4 and chapter-5 examples"
    for code, printed in examples:
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                             timeout=300, check=True)
        assert out.stdout.split() == printed.split(), f"README says:\n{printed}\nbut it prints:\n{out.stdout}"


def test_lesson_links_are_the_chapters_experiments_as_the_script_prints_them():
    from scripts.lesson_links import markdown

    start, end = "<!-- lesson-links:start -->\n", "<!-- lesson-links:end -->"
    block = README[README.index(start) + len(start): README.index(end)]
    assert block.strip() == markdown().strip(), "run `.venv/bin/python -m scripts.lesson_links` and paste it"
    assert block.count("](/") >= 15  # 3-5 experiments in each of the five chapters


def test_every_picture_and_local_file_the_readme_names_exists():
    for path in re.findall(r"\]\((docs/[^)]+)\)", README):
        assert (ROOT / path).is_file(), path
    for path in re.findall(r"`((?:benchmarks|scripts|tests|deploy|ui|bn_core)/[\w/.-]+\.(?:py|sh|yaml|template))`", README):
        assert (ROOT / path).is_file(), path
