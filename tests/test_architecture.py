"""The house rules that keep the core usable from a notebook: no UI imports in bn_core."""

import pkgutil
import subprocess
import sys
from pathlib import Path

import bn_core

ROOT = Path(__file__).resolve().parents[1]


def test_bn_core_imports_neither_streamlit_nor_plotly():
    modules = [f"bn_core.{m.name}" for m in pkgutil.iter_modules(bn_core.__path__)]
    assert modules, "bn_core has no modules"
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('streamlit', 'plotly'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"bn_core pulled in: {out.stdout.strip()}"


def test_no_sys_path_edits_or_chdir_in_app_code():
    for path in [ROOT / "app.py", *ROOT.glob("chapters/*.py"), *ROOT.glob("ui/*.py"), *ROOT.glob("bn_core/*.py")]:
        text = path.read_text()
        for bad in ("sys.path.append", "sys.path.insert", "os.chdir("):
            assert bad not in text, f"{path.name} uses {bad}"
