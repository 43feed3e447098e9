"""A browser-like client of a real ``streamlit run``: the server's process and its WebSocket.

Shared by the benchmarks that talk to a server (``bench_rerun_server``, ``bench_classroom``)
and by the tests that check the protocol or a proxy in front of several servers
(``tests/browser/test_fragment_protocol.py``, ``tests/test_deploy_nginx.py``).

A :class:`Session` speaks to ``/_stcore/stream`` as the browser does: protobuf ``BackMsg``s
out (``rerun_script`` with the page, the query string and every widget's last value), and
``ForwardMsg``s in until ``script_finished``. It learns each keyed widget's id from the deltas,
so ``rerun({"c1_frac": "0.9"})`` sends what a slider move sends; a widget drawn inside an
``st.fragment`` asks for a rerun of that fragment only, as in the browser.

Everything runs on 127.0.0.1, and every wait is bounded.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"

#: The flags every test and benchmark server gets (the README's and the brief's).
SERVER_FLAGS = ("--server.headless", "true", "--server.address", HOST,
                "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none")

#: What ``script_finished`` says when the run (or the fragment's run) ended without an error.
FINISHED_OK = (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout_s: float = 90, proc: subprocess.Popen | None = None) -> bool:
    """Poll ``url + /_stcore/health`` until it answers ``ok`` (True) or ``timeout_s`` runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    return True
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def launch_server(port: int, log=subprocess.DEVNULL, extra: tuple[str, ...] = ()) -> subprocess.Popen:
    """Start ``streamlit run app.py`` on 127.0.0.1:``port`` without waiting for it."""
    return subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", *SERVER_FLAGS,
                             "--server.port", str(port), *extra],
                            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def start_server(port: int | None = None, log=subprocess.DEVNULL, extra: tuple[str, ...] = ()
                 ) -> tuple[subprocess.Popen, int]:
    """Start ``streamlit run app.py`` on 127.0.0.1 (a free port unless given); return (process, port).

    ``log`` is where the server's output goes (a file object, ``subprocess.PIPE`` or DEVNULL).
    Raises ``RuntimeError`` if it is not healthy within 90 s (with the end of the server's
    output when ``log`` is ``subprocess.PIPE``).
    """
    port = port or free_port()
    proc = launch_server(port, log, extra)
    if not wait_healthy(f"http://{HOST}:{port}", proc=proc):
        proc.kill()
        out, _ = proc.communicate(timeout=10)
        tail = out.decode(errors="replace")[-3000:] if out else ""
        raise RuntimeError(f"streamlit did not start on port {port}" + (f":\n{tail}" if tail else ""))
    return proc, port


def stop_server(proc: subprocess.Popen) -> None:
    """Terminate and reap a server (killed if it has not stopped after 15 s)."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def rss_mb(pid: int) -> tuple[float, float]:
    """(resident set size now, its peak) of process ``pid`` in MB, from /proc (Linux)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        fields[name] = rest.split()
    return int(fields["VmRSS"][0]) / 1024, int(fields["VmHWM"][0]) / 1024


def element_key(widget_id: str) -> str | None:
    """The user key of a widget id (Streamlit writes ``$$ID-<hash>-<key>``; ``None`` if unkeyed)."""
    parts = widget_id.split("-", 2)
    return parts[2] if len(parts) == 3 and parts[2] != "None" else None


@dataclass
class Run:
    """What one rerun received."""

    ms: float  # from sending the BackMsg until script_finished
    bytes: int
    status: int  # ForwardMsg.ScriptFinishedStatus
    messages: list[str] = field(default_factory=list)  # message or element types, in order
    exceptions: list[str] = field(default_factory=list)  # texts of exception elements (tracebacks shown)
    new_session: bool = False  # a new_session message came (the server sends one per script run)

    @property
    def ok(self) -> bool:
        return self.status in FINISHED_OK and not self.exceptions

    @property
    def fragment(self) -> bool:
        return self.status == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY


class Session:
    """One browser-like session on ``ws://host:port/_stcore/stream``.

    ``page`` is the URL path of the page to open (``""``: the app's default page), ``query`` its
    query string; ``headers`` go with the WebSocket handshake (e.g. a proxy's route cookie);
    ``resume`` is the id of a session to reconnect to, as a browser does after a dropped connection.
    """

    def __init__(self, port: int, page: str = "", query: str = "", *, host: str = HOST,
                 headers: dict[str, str] | None = None, timeout_s: float = 120,
                 resume: str | None = None) -> None:
        # The browser repurposes the subprotocol list: "streamlit", an XSRF token, and (when it
        # reconnects) its session's id, which the server resumes if it still holds that session.
        protocols = ["streamlit"] + (["PLACEHOLDER_AUTH_TOKEN", resume] if resume else [])
        self.ws = connect(f"ws://{host}:{port}/_stcore/stream", subprotocols=protocols,
                          max_size=None, open_timeout=30, proxy=None, additional_headers=headers,
                          compression=None, legacy=True)
        self.page = page.strip("/")
        self.query_string = query.lstrip("?")  # the address bar's query, as the page last set it
        self.timeout_s = timeout_s
        self.widget_ids: dict[str, str] = {}  # user key -> Streamlit's widget id
        self.widgets: dict[str, object] = {}  # user key -> the widget's proto (options, format)
        self.fragment_ids: dict[str, str] = {}  # user key -> id of the fragment that drew it ("" if none)
        self.states: dict[str, object] = {}  # widget id -> WidgetState sent last
        self.page_script_hash = ""
        self.session_id = ""  # the server's id of this session (a reconnect to another server: a new id)
        self.last: Run | None = None
        self.last_messages: list[str] = []
        self.last_was_fragment = False

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _state_for(self, key: str, value) -> object:
        """The WidgetState a browser sends for widget ``key`` set to ``value``."""
        msg = BackMsg()  # a scratch container for one WidgetState
        ws = msg.rerun_script.widget_states.widgets.add()
        ws.id = self.widget_ids[key]
        proto = self.widgets.get(key)
        kind = type(proto).__name__
        if kind == "Slider":
            if len(proto.options):  # a select slider: the formatted option
                ws.string_array_value.data[:] = [str(value)]
            else:
                ws.double_array_value.data[:] = [float(value)]
        elif kind == "Checkbox":
            ws.bool_value = bool(value)
        elif kind == "NumberInput":
            ws.double_value = float(value)
        else:  # radio, selectbox: the label of the option
            ws.string_value = str(value)
        return ws

    def rerun(self, changes: dict[str, object] | None = None) -> Run:
        """Send one rerun with new widget values (key -> value as the widget shows it); return its Run.

        Without ``changes`` this is the page's first run (or the browser's "Rerun").
        """
        msg = BackMsg()
        rs = msg.rerun_script
        rs.query_string = self.query_string
        rs.page_name = self.page
        rs.page_script_hash = self.page_script_hash
        for key, value in (changes or {}).items():
            rs.fragment_id = self.fragment_ids.get(key, "")
            ws = self._state_for(key, value)
            rs.widget_states.widgets.add().CopyFrom(ws)
            self.states[ws.id] = ws
        sent = {w.id for w in rs.widget_states.widgets}
        for wid, ws in self.states.items():  # the browser sends every widget's last value
            if wid not in sent:
                rs.widget_states.widgets.add().CopyFrom(ws)
        data = msg.SerializeToString()
        t = time.perf_counter()
        self.ws.send(data)
        run = Run(ms=0.0, bytes=0, status=-1)
        deadline = time.monotonic() + self.timeout_s
        while True:
            raw = self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            run.bytes += len(raw)
            fwd = ForwardMsg()
            fwd.ParseFromString(raw)
            kind = fwd.WhichOneof("type")
            if kind == "script_finished" and fwd.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                run.messages.append("finished_early_for_rerun")  # st.rerun(): the next run follows
                continue
            if kind == "script_finished":
                run.ms = (time.perf_counter() - t) * 1e3
                run.status = fwd.script_finished
                run.messages.append(kind)
                break
            if kind == "new_session":
                run.new_session = True
                self.session_id = fwd.new_session.initialize.session_id or self.session_id
                # new_session names the main script (app.py, the home page), not the page that
                # ran: sending it back with a page name would run the home page instead. The
                # navigation message names the page that ran.
                self.page_script_hash = self.page_script_hash or fwd.new_session.page_script_hash
            elif kind == "navigation":
                self.page_script_hash = fwd.navigation.page_script_hash
            elif kind == "page_info_changed":
                self.query_string = fwd.page_info_changed.query_string
            elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                el = fwd.delta.new_element
                which = el.WhichOneof("type")
                run.messages.append(which)
                if which == "exception":
                    run.exceptions.append(f"{el.exception.type}: {el.exception.message}")
                widget = getattr(el, which)
                wid = getattr(widget, "id", "") if which not in ("exception", "markdown") else ""
                key = element_key(wid) if isinstance(wid, str) and wid else None
                if key:
                    self.widget_ids[key] = wid
                    self.widgets[key] = widget
                    self.fragment_ids[key] = fwd.delta.fragment_id
                continue
            run.messages.append(kind if kind != "delta" else fwd.delta.WhichOneof("type"))
        self.last = run
        self.last_messages = run.messages
        self.last_was_fragment = run.fragment
        return run

    def options(self, key: str) -> list[str]:
        """The formatted options of select slider / radio / selectbox ``key``, as last drawn."""
        return list(self.widgets[key].options)

    def shown(self, key: str) -> list[str]:
        """The option(s) select slider ``key`` showed when last drawn (the page's value or default)."""
        w = self.widgets[key]
        sent = self.states.get(w.id)
        if sent is not None:  # what this client set it to
            return list(sent.string_array_value.data)
        if w.set_value and len(w.raw_value):  # the page's value (from the link or the session)
            return list(w.raw_value)
        return [w.options[int(i)] for i in w.default]


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linear between order statistics."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
