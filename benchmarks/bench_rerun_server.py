"""Chapter 1's rerun after a learning-rate change, timed against a real ``streamlit run`` server.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_rerun_server [--repeats 3]

This is the measurement behind issue 2's target (server side, median <= 30 ms with caching).
It starts the app exactly as the README does (headless, 127.0.0.1, no usage stats) and talks to it
the way the browser does: over the ``/_stcore/stream`` WebSocket, with protobuf ``BackMsg``s.
Each timed rerun is one ``rerun_script`` message carrying the new slider value; the clock runs
from sending it until the server's ``script_finished`` message arrives, so it includes the
script, Streamlit's caching, building and serializing every delta (figures included) and the
loopback socket, but no browser rendering.

Situations timed (medians over the values listed, per repeat):

* ``c1_frac`` (the default mode) and ``c1_lr`` ("same for all" mode) set to values the server has
  not seen in this session: the runs and landscapes are recomputed (cache misses);
* the same values again: everything comes from the caches;
* a full rerun of the page with nothing changed (what the browser's "Rerun" does), for reference.

A widget drawn inside an ``st.fragment`` makes the browser ask for a rerun of that fragment only
(the ``fragment_id`` of its ``rerun_script`` message); this client does the same, so the figures
are what a user moving the slider gets.

An earlier version timed reruns through ``AppTest``. It missed the largest cost: AppTest does
not run Streamlit's garbage collection after each run, which a real server does (see
``ui/memory.py``), and it adds overheads of its own (a new script thread, element-tree parsing).

Between reruns the client waits ``--pause`` seconds, as between a person's slider moves; back
to back, the server is still finishing the previous run when the next request arrives.
``tests/browser/test_fragment_protocol.py`` uses the same client to check, without timing, that a
step-size change reruns only the fragment.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 30.0
FRACS = [0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95, 0.2, 0.1, 0.05]
LRS = [1e-5, 2e-5, 3e-5, 5e-5, 7e-5, 1e-4, 1.5e-4, 2e-4, 3e-4, 5e-4]


def start_server() -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port),
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("streamlit did not start")


class Session:
    """One browser-like session: sends reruns, collects the widgets' ids from the deltas."""

    def __init__(self, port: int, page_name: str = "valley-vs-bowl") -> None:
        self.page_name = page_name  # the URL path of the page this session has open (chapter 1)
        self.ws = connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"],
                          max_size=None, open_timeout=30, legacy=True)
        self.widget_ids: dict[str, str] = {}  # user key -> Streamlit's widget id
        self.fragment_ids: dict[str, str] = {}  # user key -> id of the fragment that drew it ("" if none)
        self.states: dict[str, object] = {}  # widget id -> WidgetState sent last
        self.query_string = ""  # the address bar's query, as the page last set it
        self.last_messages: list[str] = []  # what the last rerun received: message or element types

    def rerun(self, changes: dict[str, str] | None = None, radios: dict[str, str] | None = None
              ) -> tuple[float, int]:
        """Send one rerun with new widget values; return (ms until finished, bytes received).

        ``changes`` maps a select slider's key to its new (formatted) value, ``radios`` a radio's
        key to the label of its new option: what the browser sends for each.
        """
        msg = BackMsg()
        rs = msg.rerun_script
        rs.query_string = self.query_string
        rs.page_name = self.page_name
        for key, value in [*(changes or {}).items(), *(radios or {}).items()]:
            wid = self.widget_ids[key]
            # Like the browser: a widget drawn by a fragment asks for a rerun of that fragment only.
            rs.fragment_id = self.fragment_ids.get(key, "")
            ws = rs.widget_states.widgets.add()
            ws.id = wid
            if key in (radios or {}):
                ws.string_value = value
            else:
                ws.string_array_value.data[:] = [value]
            self.states[wid] = ws
        for wid, ws in self.states.items():  # the browser sends every widget's last value
            if not any(w.id == wid for w in rs.widget_states.widgets):
                rs.widget_states.widgets.add().CopyFrom(ws)
        data = msg.SerializeToString()
        t = time.perf_counter()
        self.ws.send(data)
        size = 0
        self.last_messages = []
        while True:
            raw = self.ws.recv(timeout=120)
            size += len(raw)
            fwd = ForwardMsg()
            fwd.ParseFromString(raw)
            kind = fwd.WhichOneof("type")
            if kind == "delta":
                d = fwd.delta.WhichOneof("type")
                self.last_messages.append(fwd.delta.new_element.WhichOneof("type") if d == "new_element" else d)
            else:
                self.last_messages.append(kind)
            if kind == "script_finished":
                elapsed = (time.perf_counter() - t) * 1e3
                break
            if kind == "page_info_changed":
                self.query_string = fwd.page_info_changed.query_string
            if kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                el = fwd.delta.new_element
                which = el.WhichOneof("type")
                if which in ("slider", "radio", "selectbox"):
                    wid = getattr(el, which).id
                    for key in ("c1_frac", "c1_lr", "c1_mode"):
                        if wid.endswith(key):
                            self.widget_ids[key] = wid
                            self.fragment_ids[key] = fwd.delta.fragment_id
        if fwd.script_finished not in (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY):
            raise SystemExit(f"the script did not finish successfully: {fwd.script_finished}")
        self.last_was_fragment = fwd.script_finished == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY
        return elapsed, size

    def set_mode_same(self) -> None:
        self.rerun(radios={"c1_mode": "same learning rate for all"})
        if "c1_lr" not in self.widget_ids:
            raise SystemExit("the learning-rate slider did not appear after choosing 'same learning rate for all'")


def fmt_value(x: float) -> str:
    return f"{x:g}"  # the select sliders' format_func


def measure(port: int, pause: float) -> dict[str, float]:
    s = Session(port)
    first, size = s.rerun()  # first run of a new session: imports done, caches warm from before

    def timed(changes=None) -> float:
        time.sleep(pause)  # a person moving a slider: reruns are not back to back
        return s.rerun(changes)[0]

    med = statistics.median
    out = {"first run of a session": first}
    out["frac, new values"] = med(timed({"c1_frac": fmt_value(f)}) for f in FRACS)
    kind = "a fragment rerun" if s.last_was_fragment else "a full rerun"
    out["frac, revisited"] = med(timed({"c1_frac": fmt_value(f)}) for f in FRACS)
    s.set_mode_same()
    out["lr, new values"] = med(timed({"c1_lr": fmt_value(v)}) for v in LRS)
    out["lr, revisited"] = med(timed({"c1_lr": fmt_value(v)}) for v in LRS)
    out["full rerun, no change"] = med(timed() for _ in range(10))
    out["bytes, full rerun"] = s.rerun()[1]
    time.sleep(pause)
    out["bytes, lr change"] = s.rerun({"c1_lr": fmt_value(LRS[0])})[1]
    out["kind"] = kind
    s.ws.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="fresh servers to measure (default 3)")
    ap.add_argument("--pause", type=float, default=0.25,
                    help="seconds between reruns, as between a person's slider moves (default 0.25)")
    args = ap.parse_args()
    print(f"load average {[round(x, 2) for x in os.getloadavg()]}; target: median <= {TARGET_MS:g} ms "
          f"per rerun after a learning-rate change (server side, with caching); {args.pause:g} s between reruns")
    for r in range(args.repeats):
        proc, port = start_server()
        try:
            Session(port).rerun()  # warm-up session: imports, data and stability map into the caches
            res = measure(port, args.pause)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        print(f"[server {r + 1}/{args.repeats}] a learning-rate change triggers {res.pop('kind')}")
        for label, v in res.items():
            unit = "" if label.startswith("bytes") else " ms"
            extra = ""
            if label.startswith(("frac", "lr")):
                extra = "  (meets target)" if v <= TARGET_MS else "  (ABOVE target)"
            print(f"  {label:<26} {v:8.1f}{unit}{extra}")


if __name__ == "__main__":
    main()
