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
``tests/browser/test_fragment_protocol.py`` uses the same client (``benchmarks/st_client.py``) to check, without timing, that a
step-size change reruns only the fragment.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as a file, not only with -m

from benchmarks import st_client

TARGET_MS = 30.0
FRACS = [0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95, 0.2, 0.1, 0.05]
LRS = [1e-5, 2e-5, 3e-5, 5e-5, 7e-5, 1e-4, 1.5e-4, 2e-4, 3e-4, 5e-4]


def start_server():
    try:
        return st_client.start_server()
    except RuntimeError as e:
        raise SystemExit(str(e)) from e


class Session(st_client.Session):
    """A chapter-1 session: benchmarks/st_client.py's client with chapter 1's page open."""

    def __init__(self, port: int, page_name: str = "valley-vs-bowl", **kwargs) -> None:
        super().__init__(port, page=page_name, **kwargs)

    def rerun(self, changes=None):
        run = super().rerun(changes)
        if run.status not in st_client.FINISHED_OK:
            raise SystemExit(f"the script did not finish successfully: {run.status}")
        return run

    def set_mode_same(self) -> None:
        self.rerun({"c1_mode": "same learning rate for all"})
        if "c1_lr" not in self.widget_ids:
            raise SystemExit("the learning-rate slider did not appear after choosing 'same learning rate for all'")


def fmt_value(x: float) -> str:
    return f"{x:g}"  # the select sliders' format_func


def measure(port: int, pause: float) -> dict[str, float]:
    s = Session(port)
    first = s.rerun().ms  # first run of a new session: imports done, caches warm from before

    def timed(changes=None) -> float:
        time.sleep(pause)  # a person moving a slider: reruns are not back to back
        return s.rerun(changes).ms

    med = statistics.median
    out = {"first run of a session": first}
    out["frac, new values"] = med(timed({"c1_frac": fmt_value(f)}) for f in FRACS)
    kind = "a fragment rerun" if s.last_was_fragment else "a full rerun"
    out["frac, revisited"] = med(timed({"c1_frac": fmt_value(f)}) for f in FRACS)
    s.set_mode_same()
    out["lr, new values"] = med(timed({"c1_lr": fmt_value(v)}) for v in LRS)
    out["lr, revisited"] = med(timed({"c1_lr": fmt_value(v)}) for v in LRS)
    out["full rerun, no change"] = med(timed() for _ in range(10))
    out["bytes, full rerun"] = s.rerun().bytes
    time.sleep(pause)
    out["bytes, lr change"] = s.rerun({"c1_lr": fmt_value(LRS[0])}).bytes
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
            st_client.stop_server(proc)
        print(f"[server {r + 1}/{args.repeats}] a learning-rate change triggers {res.pop('kind')}")
        for label, v in res.items():
            unit = "" if label.startswith("bytes") else " ms"
            extra = ""
            if label.startswith(("frac", "lr")):
                extra = "  (meets target)" if v <= TARGET_MS else "  (ABOVE target)"
            print(f"  {label:<26} {v:8.1f}{unit}{extra}")


if __name__ == "__main__":
    main()
