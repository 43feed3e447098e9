"""How long a new visitor waits for the home page on a warm server (target: under a second).

    .venv/bin/python -m benchmarks.bench_home [--sessions 20]

Starts ``streamlit run app.py`` as the README does (headless, 127.0.0.1, no file watcher),
warms it with one visit to the home page and to every chapter (imports, data, caches: what a
server that has served a class already holds), then opens ``--sessions`` new sessions on the
home page one after another over the WebSocket, as a browser does, and times each from the
first ``rerun_script`` message to the server's ``script_finished``. The browser's own drawing
comes on top (a few tens of ms for a page without charts). Prints median and max, against the
course issue's target of 1 s, and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import st_client  # noqa: E402
from ui import course  # noqa: E402

TARGET_MS = 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=20)
    a = ap.parse_args()
    load0 = os.getloadavg()
    proc, port = st_client.start_server()
    try:
        for page in ["", *(c.url_path for c in course.chapters())]:  # warm: one visit each
            with st_client.Session(port, page=page, timeout_s=300) as s:
                s.rerun()
        times = []
        for _ in range(max(1, a.sessions)):
            with st_client.Session(port, page="") as s:
                run = s.rerun()
                if not run.ok:
                    raise SystemExit(f"the home page did not finish cleanly: {run.status} {run.exceptions}")
                times.append(run.ms)
    finally:
        proc.terminate()
        proc.wait(15)
    print(f"home page, new session's first run on a warm server ({len(times)} sessions): "
          f"median {statistics.median(times):.0f} ms, max {max(times):.0f} ms "
          f"(target < {TARGET_MS:.0f} ms)")
    print(f"load average before {load0[0]:.2f}, after {os.getloadavg()[0]:.2f} (2 cores)")


if __name__ == "__main__":
    main()
