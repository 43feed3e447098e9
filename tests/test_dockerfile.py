"""The image's runtime, run without Docker: what the Dockerfile copies, as its user, its CMD, its
health check.

CI has no Docker engine (nor a registry to pull the base image from), so the image is not built
in the suite; ``deploy/check_stack.py`` checks a built stack, and the README says where that ran.
What can be checked without Docker is checked here: the files
the build context sends (``git ls-files`` of this checkout minus ``.dockerignore``) are copied
to a ``WORKDIR`` of root-owned files; the Dockerfile's own ``CMD`` (only ``python`` replaced by
this venv's interpreter, the port by a free one and ``0.0.0.0`` by 127.0.0.1) is started there
with a home of its own, as the image's unprivileged user where this machine lets that user run
the interpreter (not here: the venv's Python lives in a pyenv under root's 700 home, so it runs
as the current user, and the test checks instead that the app writes nothing into its WORKDIR,
which that user could not); its ``HEALTHCHECK`` command, as written, must succeed once the
server is up and fail once it is stopped; and chapters 1 and 3 must run in that copy with no
traceback. The dependency layer (``pip install -r
requirements.txt``) is what ``.ci/run`` installs into the venv these tests run in.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from benchmarks import st_client

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
UID = int(re.search(r"useradd\b.*--uid (\d+)", DOCKERFILE).group(1))  # the image's user


def _instruction(name: str) -> str:
    """The argument of the Dockerfile's (last) instruction ``name``, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    found = re.findall(rf"^{name}\s+(.+)$", joined, re.M)
    assert found, f"the Dockerfile has no {name}"
    return found[-1].strip()


def _exec_form(text: str) -> list[str]:
    """A JSON exec-form command (``CMD [...]``)."""
    assert text.startswith("["), f"not the exec form: {text}"
    return json.loads(text)


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether ``.dockerignore``'s ``patterns`` exclude ``path`` (no ``!`` rules are used)."""
    parts = path.split("/")
    for pat in patterns:
        pat = pat.rstrip("/")
        if pat.startswith("**/"):
            if any(fnmatch.fnmatch(p, pat[3:]) for p in parts):
                return True
        elif any(fnmatch.fnmatch("/".join(parts[:i]), pat) for i in range(1, len(parts) + 1)):
            return True
    return False


def build_context_files() -> list[str]:
    """The files ``docker build .`` sends from a clean clone: tracked files minus .dockerignore."""
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    assert not any(p.startswith("!") for p in patterns), "exceptions in .dockerignore: extend _ignored"
    # fnmatch's * also matches "/", Docker's does not: only names and "**/name" are handled
    assert not any(set("*?[") & set(p.removeprefix("**/")) for p in patterns), "wildcards: extend _ignored"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [f for f in tracked.decode().split("\0") if f and not _ignored(f, patterns)]


def test_the_build_context_holds_the_app_and_none_of_the_development_files():
    files = build_context_files()
    for needed in ("app.py", "requirements.txt", ".streamlit/config.toml"):
        assert needed in files, needed
    assert any(f.startswith("pages/") for f in files) and any(f.startswith("bn_core/") for f in files)
    assert any(f.startswith("ui/") for f in files) and any(f.startswith("data/") for f in files)
    for dev in ("tests/", "benchmarks/", ".ci/", "scripts/", "deploy/"):
        assert not any(f.startswith(dev) for f in files), dev
    assert _ignored("ui/__pycache__/x.pyc", ["**/__pycache__"]) and not _ignored("ui/x.py", ["**/__pycache__"])


def _can_drop_to_image_user() -> bool:
    """Whether this process can start the interpreter as the image's user: only as root, and
    only where that user may run it (a pyenv under root's 700 home, as here, it may not)."""
    if os.geteuid() != 0:
        return False
    try:
        return subprocess.run([sys.executable, "-c", "pass"], user=UID, group=UID, extra_groups=[],
                              capture_output=True, timeout=30).returncode == 0
    except PermissionError:
        return False


AS_IMAGE_USER = _can_drop_to_image_user()


def _as_image_user() -> dict:
    """Popen arguments that drop to the image's unprivileged user, where possible."""
    return {"user": UID, "group": UID, "extra_groups": []} if AS_IMAGE_USER else {}


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` with its size and modification time (ns)."""
    return {str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture()
def image_like():
    """The copied WORKDIR and the server its CMD started there (port, process, log path)."""
    assert _instruction("WORKDIR") == "/app"
    assert _instruction("COPY").split() == [".", "."]  # the whole build context into WORKDIR
    assert _instruction("USER") == "bnlab"
    base = Path(tempfile.mkdtemp(prefix="bnlab-image-"))
    base.chmod(0o755)  # the image user must reach its WORKDIR
    app = base / "app"
    for rel in build_context_files():
        (app / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, app / rel)
    home = base / "home"
    home.mkdir()
    if AS_IMAGE_USER:
        os.chown(home, UID, UID)  # useradd --create-home; the app's files stay root's
    port = st_client.free_port()
    cmd = _exec_form(_instruction("CMD"))
    assert cmd[:2] == ["python", "-m"] and "0.0.0.0" in cmd and "8501" in cmd
    cmd = [sys.executable if c == "python" else "127.0.0.1" if c == "0.0.0.0" else str(port) if c == "8501" else c
           for c in cmd]
    files = _tree(app)  # before the server starts
    log_path = base / "server.log"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=app, env=env, stdout=log, stderr=subprocess.STDOUT, **_as_image_user())
    try:
        yield {"app": app, "port": port, "proc": proc, "log": log_path, "files": files}
    finally:
        if proc.poll() is None:
            st_client.stop_server(proc)
        shutil.rmtree(base, ignore_errors=True)


def _health_check(port: int) -> int:
    """Run the Dockerfile's HEALTHCHECK command as written (port and interpreter swapped)."""
    check = _exec_form(_instruction("HEALTHCHECK").split("CMD", 1)[1].strip())
    check = [sys.executable if c == "python" else c.replace("8501", str(port)) for c in check]
    return subprocess.run(check, capture_output=True, timeout=30, **_as_image_user()).returncode


def test_the_cmd_serves_the_course_as_the_image_user_and_the_health_check_follows_it(image_like):
    port, proc = image_like["port"], image_like["proc"]
    start_period = int(re.search(r"--start-period=(\d+)s", _instruction("HEALTHCHECK")).group(1))
    deadline = time.monotonic() + start_period
    while _health_check(port) != 0:
        assert proc.poll() is None, image_like["log"].read_text()[-3000:]
        assert time.monotonic() < deadline, "not healthy within the start period"
        time.sleep(1)
    if AS_IMAGE_USER:  # the server runs as the image's user, not root
        assert os.stat(f"/proc/{proc.pid}").st_uid == UID
    with st_client.Session(port, "valley-vs-bowl") as s:
        run = s.rerun()
        assert run.ok and run.messages, run.exceptions
        move = s.rerun({"c1_frac": "0.9"})
        assert move.ok and move.fragment, move.exceptions
    with st_client.Session(port, "bn-in-network") as s:  # the worker pool starts in the copy too
        run = s.rerun()
        assert run.ok, run.exceptions

    # The image user cannot write the app's files: the app wrote, changed or removed nothing there.
    assert _tree(image_like["app"]) == image_like["files"]
    st_client.stop_server(proc)  # and the health check notices a server that is gone
    assert proc.poll() is not None and _health_check(port) != 0
    log = image_like["log"].read_text()
    assert "Traceback" not in log and "RuntimeWarning" not in log, log[-3000:]
    # The CMD turns the welcome banner off: on 0.0.0.0 printing it looks up the machine's
    # external address outside (here, on 127.0.0.1, the banner would print without a lookup).
    assert "--logger.hideWelcomeMessage" in _exec_form(_instruction("CMD"))
    assert "You can now view" not in log
