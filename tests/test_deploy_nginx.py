"""The scaled-out deployment, tested without Docker: Debian's nginx in front of two replicas.

CI has no Docker engine, so the containers are not built here (``deploy/check_stack.py`` checks a
running compose stack with the same client). What the deployment depends on is tested for real:
nginx runs ``deploy/nginx/bnlab.conf.template`` (filled in by ``deploy/nginx_conf.py``, as the
nginx image's entrypoint fills it for ``deploy/compose.yaml``)
in front of two ``streamlit run`` replicas on 127.0.0.1, and the classroom benchmark's client
(``benchmarks/st_client.py``) plays the students. nginx runs in the foreground as one process
(``master_process off``, ``deploy/nginx_conf.local_proxy``) on a free port, with its pid, logs
and temp files in a temp dir: no system service is touched. ``scripts/run_tests.sh`` installs
Debian's nginx when it is missing.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks import st_client
from deploy import nginx_conf
from deploy.check_stack import Student, routes
from ui import live_chart

ROOT = Path(__file__).resolve().parents[1]
STUDENTS = 10  # sessions opened through the proxy (more if all landed on one replica)
MAX_STUDENTS = 24

def _nginx() -> None:
    if nginx_conf.nginx_binary() is None:
        pytest.fail("Debian's nginx is missing: `bash scripts/run_tests.sh` installs it (apt-get install nginx)")


def _routes(log: Path) -> dict[str, list[str]]:
    """route cookie -> the upstream address of each of its requests in nginx's ``log``."""
    return routes(log.read_text().splitlines())


def _wait_for(predicate, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_compose_and_image_use_the_template_and_the_health_check():
    compose = (ROOT / "deploy" / "compose.yaml").read_text()
    mount = re.search(r"- \./(\S+):/etc/nginx/templates/default\.conf\.template:ro", compose)
    assert mount and (ROOT / "deploy" / mount.group(1)).resolve() == nginx_conf.TEMPLATE
    for name in nginx_conf.VARIABLES:  # every variable the template uses is set for the image
        assert re.search(rf"^\s+{name}: \S", compose, re.M), name
    docker = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", docker, re.M)
    assert re.search(r"^USER (?!root)\w+", docker, re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*/_stcore/health", docker, re.M)
    cmd = docker[docker.index("CMD [\"python\", \"-m\", \"streamlit\""):]
    for flag in ('"--server.headless", "true"', '"--browser.gatherUsageStats", "false"',
                 '"--server.fileWatcherType", "none"', '"--server.port", "8501"',
                 '"--logger.hideWelcomeMessage", "true"'):  # no outside lookup of the address
        assert flag in cmd, flag


def _stop(replicas: dict, logs: list, students: list) -> None:
    for s in students:
        try:
            s.session.close()
        except Exception:  # noqa: BLE001 - already closed by its server
            pass
    for proc in replicas.values():
        if proc.poll() is None:
            st_client.stop_server(proc)
    for log in logs:
        log.close()


@dataclass
class Deployment:
    d: Path  # nginx's files and logs, and the replicas' logs
    ports: list[int]  # the replicas'
    replicas: dict  # port -> process
    proxy_port: int
    students: list[Student]  # their sessions are closed at the end


@contextlib.contextmanager
def _two_replicas_behind_nginx(one_name: str | None = None):
    """Two ``streamlit run`` replicas on 127.0.0.1 behind nginx (``nginx_conf.local_proxy``).

    On the way out the students' sessions are closed and the replicas stopped; after a block
    that did not fail, neither replica may have logged a traceback or a RuntimeWarning.
    """
    _nginx()
    d = Path(tempfile.mkdtemp(prefix="bnlab-nginx-"))
    ports = [st_client.free_port(), st_client.free_port()]
    logs = [open(d / f"replica-{p}.log", "wb") for p in ports]  # noqa: SIM115 - closed by _stop
    replicas = {p: st_client.launch_server(p, log) for p, log in zip(ports, logs, strict=True)}
    students: list[Student] = []
    with contextlib.ExitStack() as stack:
        stack.callback(_stop, replicas, logs, students)
        for p, proc in replicas.items():
            assert st_client.wait_healthy(f"http://127.0.0.1:{p}", proc=proc), f"replica {p} did not start"
        proxy_port = stack.enter_context(
            nginx_conf.local_proxy([f"127.0.0.1:{p}" for p in ports], d, one_name=one_name))
        yield Deployment(d, ports, replicas, proxy_port, students)
    for p in ports:
        text = (d / f"replica-{p}.log").read_text(errors="replace")
        assert "Traceback" not in text and "RuntimeWarning" not in text, text[-3000:]
    shutil.rmtree(d, ignore_errors=True)


def test_two_replicas_behind_nginx_keep_each_session_on_one_and_survive_losing_one():
    with _two_replicas_behind_nginx() as dep:
        d, ports, replicas, proxy_port, students = dep.d, dep.ports, dep.replicas, dep.proxy_port, dep.students

        # Students open chapter 1 through the proxy and move the step-size slider.
        def replica_of(student: Student) -> str:
            # The replica that served the student's HTML (logged once nginx has sent it all).
            assert _wait_for(lambda: student.route in _routes(d / "access.log"), 10)
            return _routes(d / "access.log")[student.route][0]

        while len(students) < MAX_STUDENTS:
            s = Student(proxy_port)
            students.append(s)
            first = s.session.rerun()
            assert first.ok and live_chart.ELEMENT_TYPE in first.messages, first.exceptions
            move = s.session.rerun({"c1_frac": "0.9"})
            assert move.ok and move.fragment, move.exceptions
            if len(students) >= STUDENTS and len({replica_of(t) for t in students}) == 2:
                break
        by_replica = {f"127.0.0.1:{p}": [s for s in students if replica_of(s) == f"127.0.0.1:{p}"] for p in ports}
        assert all(by_replica.values()), "every student landed on one replica"

        # Sticky: a reconnect with the same cookie reaches the same replica (its first WebSocket
        # was logged when it closed), which still holds the session and resumes it.
        for s in students:
            before = s.reconnect()
            assert s.session.rerun().ok
            assert s.session.session_id == before, "the reconnect did not reach the session's replica"
        assert _wait_for(lambda: all(len(_routes(d / "access.log")[s.route]) >= 2 for s in students), 10)
        for route, upstreams in _routes(d / "access.log").items():
            assert len(set(upstreams)) == 1, (route, upstreams)  # HTML and WebSocket: one replica

        # One replica stops. Its students' WebSockets close; the others' keep going untouched.
        gone, kept = ports
        st_client.stop_server(replicas[gone])
        for s in by_replica[f"127.0.0.1:{kept}"]:
            before = s.session.session_id
            run = s.session.rerun({"c1_frac": "0.3"})
            assert run.ok and s.session.session_id == before
        for s in by_replica[f"127.0.0.1:{gone}"]:
            with pytest.raises(Exception):  # noqa: B017 - whichever of websockets' closed errors
                s.session.rerun({"c1_frac": "0.3"})
            assert "c1_frac=0.9" in s.session.query_string  # the address bar: the last setting that ran
            before = s.reconnect()
            run = s.session.rerun()
            assert run.ok and live_chart.ELEMENT_TYPE in run.messages, run.exceptions  # a fresh page, no traceback
            assert s.session.session_id != before  # a new session, on the other replica
            assert s.session.shown("c1_frac") == ["0.9"]  # the link brought the setting back
            assert s.session.rerun({"c1_frac": "0.2"}).ok
        for s in students:
            s.session.close()
        assert _wait_for(lambda: all(
            _routes(d / "access.log")[s.route][-1].endswith(f"127.0.0.1:{kept}") for s in by_replica[f"127.0.0.1:{gone}"]
        ), 10), _routes(d / "access.log")


def test_one_name_for_every_replica_keeps_each_session_on_one_too():
    """compose's form of the upstream: one ``server app:8501;`` whose name resolves to every replica.

    nginx's ``hash ... consistent`` places a server's points on its ring by the server's name, so
    every address of one name got the same points, and nginx took turns among them: each request
    of a session could reach another replica (found running deploy/compose.yaml with three
    replicas: 3 of 12 reconnects found their session, ``deploy/check_stack.py``). With the
    consistent hash this test fails at the first reconnect: one nginx process taking turns between
    the two relays sent each page to one and its WebSocket to the other. The plain ``hash`` picks
    one of the addresses by the cookie. Here the name resolves to two relays on 127.0.0.2 and
    127.0.0.3, one per replica (``nginx_conf.local_proxy(one_name=...)``): the access log names
    the replica that served a request by its relay's address.
    """
    with _two_replicas_behind_nginx(one_name="bnlab-app") as dep:
        d, proxy_port, students = dep.d, dep.proxy_port, dep.students

        def served(s: Student) -> list[str]:
            return _routes(d / "access.log").get(s.route, [])

        for _ in range(STUDENTS):
            s = Student(proxy_port)
            students.append(s)
            assert s.session.rerun().ok and s.session.rerun({"c1_frac": "0.9"}).fragment
        for s in students:  # each session's WebSocket comes back to the replica that holds it
            before = s.reconnect()
            assert s.session.rerun().ok
            assert s.session.session_id == before, (s.route, served(s))
        assert _wait_for(lambda: all(len(served(s)) >= 2 for s in students), 10)  # the closed WebSockets
        for s in students:  # its page and its first WebSocket: one replica
            assert len(set(served(s))) == 1, (s.route, served(s))
        while len({served(t)[0] for t in students}) < 2 and len(students) < MAX_STUDENTS:
            s = Student(proxy_port)  # more students, until both replicas have some
            students.append(s)
            assert s.session.rerun().ok
            assert _wait_for(lambda s=s: served(s), 10)  # the HTML, logged once sent
        relays = {served(s)[0] for s in students}
        assert len(relays) == 2, "every student landed on one replica"
        assert all(re.fullmatch(r"127\.0\.0\.[23]:\d+", r) for r in relays), relays  # reached by the name
