"""The house rules: the design card's layout, no UI imports in bn_core, imports flow one way."""

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
    for path in [ROOT / "app.py", *ROOT.glob("pages/*.py"), *ROOT.glob("ui/*.py"), *ROOT.glob("bn_core/*.py")]:
        text = path.read_text()
        for bad in ("sys.path.append", "sys.path.insert", "os.chdir("):
            assert bad not in text, f"{path.name} uses {bad}"


def test_the_design_cards_top_level_layout():
    for name in ("app.py", "pages", "bn_core", "data", "requirements.txt", "tests", "README.md"):
        assert (ROOT / name).exists(), f"{name} is missing from the top level"
    assert not (ROOT / "chapters").exists(), "the chapters live in pages/ now"
    pages = sorted(p.name for p in (ROOT / "pages").glob("*.py"))
    assert pages and all(p[0].isdigit() and "_" in p for p in pages), pages


def test_every_page_has_the_same_shape_and_imports_flow_one_way():
    """A page starts with ui.page.setup(<its number>) and never reaches into streamlit's
    navigation; bn_core never imports ui; ui never imports pages."""
    import ast

    for path in sorted((ROOT / "pages").glob("*.py")):
        number = int(path.name.split("_", 1)[0])
        calls = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)
                 and getattr(n.func, "attr", "") == "setup"
                 and getattr(n.func.value, "id", "") == "page"]
        assert calls and ast.literal_eval(calls[0].args[0]) == number, f"{path.name}: no page.setup({number})"
        assert "st.navigation" not in path.read_text(), path.name
    for path in [*ROOT.glob("bn_core/*.py")]:
        assert "from ui" not in path.read_text() and "import ui" not in path.read_text(), path.name
    for path in [*ROOT.glob("ui/*.py")]:
        assert "from pages" not in path.read_text(), path.name
