"""Check a running deployment as a class of browsers would: sticky sessions, every page, a lost replica.

After ``docker compose up --build -d`` in ``deploy/`` (three replicas behind nginx on port 8080),
from the repository root::

    .venv/bin/python -m deploy.check_stack --port 8080               # without stopping a replica
    .venv/bin/python -m deploy.check_stack --port 8080 --stop-one    # and stop one replica

Students (``benchmarks/st_client.py``: the browser's protocol over the WebSocket) open chapter 1
through the proxy, each with the route cookie the proxy set on its page's HTML, run it and move
the step size; the proxy's access log (``docker compose logs proxy``) says which replica served
each request. Checked: the students spread over more than one replica; each one's HTML and
WebSockets reach one replica, and a reconnect resumes its session there; every page of the course
runs without an error. With ``--stop-one``, one replica is stopped (``docker stop``): its students
reconnect to another and get a fresh page with their link's settings, the others' sessions go on,
and no replica logged a traceback. The stopped replica is started again at the end, and must come
back on its address (nginx resolved the replicas when it started). Exit status 1 on a failed check.

:class:`Student` and :func:`routes` are also what ``tests/test_deploy_nginx.py`` uses against
Debian's nginx in front of two ``streamlit run`` replicas, without Docker.
"""

from __future__ import annotations

import argparse
import http.cookies
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchmarks import st_client
from ui import course

DEPLOY = Path(__file__).resolve().parent
PAGE = course.chapter(1).url_path  # a full run, then a fragment rerun of its step-size slider
#: The widget a student moves first, on the chapters whose move the check repeats.
FIRST_MOVE = {1: "c1_frac", 3: "c3_lr"}
#: Every page of the course (the home page, then each chapter), with that widget or None.
PAGES = (("", None), *((c.url_path, FIRST_MOVE.get(c.number)) for c in course.chapters()))
COOKIE = "bnlab_route"  # deploy/nginx/bnlab.conf.template


class Student:
    """A browser through the proxy: the page's HTML first (which sets the route cookie), then the
    WebSocket with that cookie, as a browser sends it."""

    def __init__(self, proxy_port: int, page: str = PAGE, host: str = st_client.HOST,
                 timeout_s: float = 60) -> None:
        self.port, self.page, self.host, self.timeout_s = proxy_port, page, host, timeout_s
        with urllib.request.urlopen(f"http://{host}:{proxy_port}/{page}", timeout=30) as r:
            if r.status != 200 or b"<html" not in r.read(2000).lower():
                raise RuntimeError(f"the proxy did not serve the page {page!r} (status {r.status})")
            cookie = http.cookies.SimpleCookie()
            for header in r.headers.get_all("Set-Cookie") or []:
                cookie.load(header)
        if COOKIE not in cookie:
            raise RuntimeError(f"the proxy set no {COOKIE} cookie: sessions cannot stay on one replica")
        self.route = cookie[COOKIE].value
        self.session = self.connect()

    def connect(self, query: str = "", resume: str | None = None) -> st_client.Session:
        return st_client.Session(self.port, self.page, query, host=self.host,
                                 headers={"Cookie": f"{COOKIE}={self.route}"},
                                 timeout_s=self.timeout_s, resume=resume)

    def reconnect(self) -> str:
        """Drop the WebSocket and reconnect as the browser does (its address bar's query and its
        session's id); return the id the session had."""
        old = self.session
        old.close()
        self.session = self.connect(old.query_string, resume=old.session_id)
        return old.session_id


def routes(log_lines) -> dict[str, list[str]]:
    """route cookie -> the upstream address of each of its logged requests (the template's
    ``bnlab`` log format; lines without it, such as compose's prefixes or nginx notices, are skipped)."""
    out: dict[str, list[str]] = {}
    for line in log_lines:
        m = re.search(r"route=(\S+) upstream=(.+?) time=", line)
        if m:
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


def _compose(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(["docker", "compose", *args], cwd=DEPLOY, capture_output=True, text=True,
                          timeout=timeout, check=True)
    return done.stdout


def _proxy_routes() -> dict[str, list[str]]:
    return routes(_compose("logs", "--no-log-prefix", "proxy").splitlines())


def _logged(wanted: list[str], at_least: int, timeout_s: float = 15) -> dict[str, list[str]]:
    """The proxy's routes once each of ``wanted`` has ``at_least`` logged requests (nginx logs a
    request when it ends: a page once sent, a WebSocket once closed), or when ``timeout_s`` is up."""
    end = time.monotonic() + timeout_s
    logged = _proxy_routes()
    while any(len(logged.get(r, [])) < at_least for r in wanted) and time.monotonic() < end:
        time.sleep(0.5)
        logged = _proxy_routes()
    return logged


def _containers() -> dict[str, str]:
    """IP address on compose's network -> name, of every running app replica."""
    out = {}
    for name in _compose("ps", "--format", "{{.Name}}", "app").split():
        ip = subprocess.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                             name], capture_output=True, text=True, check=True, timeout=30).stdout.strip()
        out[ip] = name
    return out


def check(port: int, students: int, stop_one: bool) -> list[str]:
    """Run the checks against the stack whose proxy listens on ``port``; return the failures."""
    failures: list[str] = []

    def expect(ok: bool, what: str) -> bool:
        print(("  ok    " if ok else "  FAIL  ") + what, flush=True)
        if not ok:
            failures.append(what)
        return ok

    class_: list[Student] = []
    try:
        replicas = _containers()
        print(f"{len(replicas)} app replicas: {', '.join(sorted(replicas.values()))}")
        for _ in range(students):
            s = Student(port)
            class_.append(s)
            first = s.session.rerun()
            move = s.session.rerun({"c1_frac": "0.9"})
            if not (first.ok and move.ok and move.fragment):
                expect(False, f"chapter 1 through the proxy: {first.exceptions or move.exceptions or move.status}")
        expect(not failures, f"{students} students ran chapter 1 and moved the step size through the proxy")
        pages = _logged([s.route for s in class_], 1)
        missing = [s.route for s in class_ if s.route not in pages]
        if missing:
            raise RuntimeError(f"the proxy's log has no request of routes {missing}")
        served = {s.route: pages[s.route][0].rsplit(":", 1)[0] for s in class_}  # the replica of its page
        counts = {replicas.get(ip, ip): sum(1 for v in served.values() if v == ip) for ip in set(served.values())}
        expect(len(counts) > 1 or len(replicas) == 1, f"students spread over replicas: {counts}")

        resumed = 0
        for s in class_:
            before = s.reconnect()
            resumed += s.session.rerun().ok and s.session.session_id == before
        expect(resumed == len(class_), f"{resumed} of {len(class_)} reconnects resumed their session on its replica")
        logged = _logged(list(served), 2)  # each route's page and its first (now closed) WebSocket
        unlogged = [r for r in served if len(logged.get(r, [])) < 2]
        mixed = {r: u for r, u in logged.items() if r in served and len(set(u)) != 1}
        expect(not unlogged and not mixed,
               "every student's HTML and WebSockets went to one replica"
               + (f"; not in the proxy's log: {unlogged}" if unlogged else "") + (f": {mixed}" if mixed else ""))

        for page, key in PAGES:
            s = Student(port, page, timeout_s=600)  # a fresh replica's first chapter-4 visit computes its figures
            try:
                run = s.session.rerun()
                ok = run.ok
                if ok and key:
                    options, shown = s.session.options(key), s.session.shown(key)
                    ok = s.session.rerun({key: next(o for o in options if o not in shown)}).ok
                expect(ok, f"page /{page} runs{f' and its {key} moves' if key else ''} ({run.ms:.0f} ms first run)")
            finally:
                s.session.close()

        if stop_one:
            gone_ip = served[class_[0].route]
            gone = replicas[gone_ip]
            subprocess.run(["docker", "stop", gone], check=True, capture_output=True, timeout=60)
            print(f"stopped {gone}")
            try:
                lost = [s for s in class_ if served[s.route] == gone_ip]
                kept = [s for s in class_ if served[s.route] != gone_ip]
                going = sum(s.session.rerun({"c1_frac": "0.3"}).ok for s in kept)
                expect(going == len(kept), f"{going} of {len(kept)} students on the other replicas went on")
                fresh = 0
                for s in lost:
                    with_link = "c1_frac=0.9" in s.session.query_string
                    before = s.reconnect()
                    run = s.session.rerun()
                    fresh += (run.ok and s.session.session_id != before and with_link
                              and s.session.shown("c1_frac") == ["0.9"])
                expect(fresh == len(lost), f"{fresh} of {len(lost)} students of {gone} got a fresh page "
                                           "with their link's step size on another replica")
            finally:
                subprocess.run(["docker", "start", gone], check=True, capture_output=True, timeout=60)
                print(f"started {gone} again")
            back = {name: ip for ip, name in _containers().items()}.get(gone)
            expect(back == gone_ip, f"{gone} came back on its address {gone_ip} (now {back}; "
                                    "otherwise nginx must be reloaded to reach it)")
        logs = _compose("logs", "--no-log-prefix", "app", timeout=60)
        bad = [line for line in logs.splitlines() if "Traceback" in line or "Warning" in line]
        expect(not bad, "no replica logged a traceback or a warning" + (f": {bad[:3]}" if bad else ""))
    except Exception as e:  # noqa: BLE001 - any error is a failed check, reported with the others
        expect(False, f"{type(e).__name__}: {e}")
    finally:
        for s in class_:
            try:
                s.session.close()
            except Exception:  # noqa: BLE001 - closed by its server already
                pass
    return failures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8080, help="the proxy's port on 127.0.0.1 (default 8080)")
    ap.add_argument("--students", type=int, default=12, help="students opening chapter 1 (default 12)")
    ap.add_argument("--stop-one", action="store_true", help="also stop one replica, then start it again")
    args = ap.parse_args()
    failures = check(args.port, args.students, args.stop_one)
    print(f"{'all checks passed' if not failures else f'{len(failures)} check(s) failed'}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
