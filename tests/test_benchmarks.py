"""Every benchmark starts both ways the README shows: ``python -m benchmarks.NAME`` and
``python benchmarks/NAME.py`` (run as a file, Python puts benchmarks/ first on the path, not the
repository root). Only the modules' top level runs here (imports, tables), never a measurement:
speed is not asserted in tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))

# Each file's top level, run the way each form runs it, in one fresh interpreter with no
# PYTHONPATH: as a file (sys.path[0] = benchmarks/) and as a module (sys.path[0] = the root).
# Before each file, the path is reset and the project's modules are forgotten, so no file can
# pass on the strength of one loaded before it.
LOAD = """
import json, runpy, sys
root, names = sys.argv[1], json.loads(sys.argv[2])
base = list(sys.path[1:])
failed = {}
for form in ("file", "module"):
    for name in names:
        sys.path[:] = [root + "/benchmarks" if form == "file" else root, *base]
        for mod in [m for m in sys.modules if m.split(".")[0] in ("bn_core", "ui", "benchmarks")]:
            del sys.modules[mod]
        try:
            if form == "file":
                runpy.run_path(root + "/benchmarks/" + name, run_name="benchmark_top_level")
            else:
                runpy.run_module("benchmarks." + name[:-3], run_name="benchmark_top_level", alter_sys=True)
        except SystemExit as e:  # torch_parity exits 0 when PyTorch is missing
            if e.code not in (0, None):
                failed[form + " " + name] = f"SystemExit({e.code})"
        except Exception as e:
            failed[form + " " + name] = f"{type(e).__name__}: {e}"
print(json.dumps(failed))
"""


def test_every_benchmark_loads_as_a_file_and_as_a_module():
    assert "bench_loss_grid.py" in BENCHMARKS and "st_client.py" in BENCHMARKS
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", LOAD, str(ROOT), json.dumps(BENCHMARKS)],
                         cwd="/", env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    failed = json.loads(res.stdout.strip().splitlines()[-1])
    assert not failed, failed


def test_the_browser_benchmark_table_names_real_pages_and_sliders():
    """bench_browser's CHAPTERS follow the course: each row's path is its chapter's page,
    and its slider label is one that the chapter's code draws (a renamed slider fails here, not
    only when someone runs the benchmark)."""
    from benchmarks.bench_browser import CHAPTERS
    from ui import course

    assert [c.number for c in CHAPTERS] == [1, 2, 3, 4, 5]
    sources = "\n".join(p.read_text() for p in [*(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py")])
    for row in CHAPTERS:
        ch = course.chapter(row.number)
        assert row.path == "/" + ch.url_path, (row.number, row.path, ch.url_path)
        assert f'"{row.slider}"' in sources, f"chapter {row.number}: no slider labelled {row.slider!r}"
        assert row.presses >= 1
