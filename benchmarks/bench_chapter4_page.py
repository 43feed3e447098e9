"""Chapter 4's first visit, a class of visitors at once, and a warm visit, against a real server.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_chapter4_page [--class-size 30]

Issue 7's targets: the first visit shows its first section within 5 s on 2 cores, the full
batch-size sweep takes <= 20 s (with a progress bar) and is shared through the cache by every
later visitor. Each situation starts ``streamlit run app.py`` afresh (an empty cache) and talks
to it as the browser does, over the ``/_stcore/stream`` WebSocket
(:class:`benchmarks.bench_rerun_server.Session`): one ``rerun_script`` for the page, then the
clock runs until the server's ``script_finished``. Figures printed:

* **cold, one visitor**: time to the first chart (the main chart's published panel, drawn
  before any training), to the first chart with a measured batch size, and to the end of the
  page (every section trained);
* **cold, a class at once**: ``--class-size`` sessions open the page at the same moment on a
  fresh server; per session, the time to the end of the page. Streamlit's cache holds one
  lock per key, so one session computes each sweep chunk and the others wait for it: the
  class should take about as long as one visitor, not ``class-size`` times as long;
* **warm**: one more visitor after that, everything from the cache.

Browser rendering is not included. The load average is printed before and after (the machine
is shared: read the figures with it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as a file, not only with -m

from benchmarks.bench_rerun_server import Session, start_server
from ui import live_chart

PAGE = "curse-of-batch-norm"
MAIN = "Test error vs batch size"


def visit(port: int) -> dict[str, float]:
    """Open chapter 4 once; seconds to the first chart, the first measured one and the end."""
    s = Session(port, page_name=PAGE)
    msg = BackMsg()
    msg.rerun_script.page_name = PAGE
    msg.rerun_script.query_string = ""
    t0 = time.perf_counter()
    s.ws.send(msg.SerializeToString())
    out: dict[str, float] = {}
    while True:
        fwd = ForwardMsg()
        fwd.ParseFromString(s.ws.recv(timeout=600))
        kind = fwd.WhichOneof("type")
        now = time.perf_counter() - t0
        if kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
            el = fwd.delta.new_element
            if el.WhichOneof("type") == live_chart.ELEMENT_TYPE:
                spec = live_chart.spec_json(el.bidi_component)
                if MAIN in spec:
                    out.setdefault("first_chart_s", now)
                    if "mean over seeds" in spec:  # a measured trace is drawn
                        out.setdefault("first_measured_s", now)
        if kind == "script_finished":
            out["page_s"] = now
            if fwd.script_finished != ForwardMsg.FINISHED_SUCCESSFULLY:
                raise SystemExit(f"the page did not finish successfully: {fwd.script_finished}")
            break
    s.ws.close()
    return out


def fresh(fn):
    proc, port = start_server()
    try:
        return fn(port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def crowd(port: int, n: int) -> list[float]:
    results: list[float] = [float("nan")] * n
    barrier = threading.Barrier(n)

    def one(i: int) -> None:
        barrier.wait()
        results[i] = visit(port)["page_s"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--class-size", type=int, default=30)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")

    def cold_then_warm(port):
        return visit(port), visit(port)

    cold, warm = fresh(cold_then_warm)
    print(f"cold, one visitor: first chart {cold.get('first_chart_s', float('nan')):.1f} s (target <= 5 s), "
          f"first measured batch size {cold.get('first_measured_s', float('nan')):.1f} s, "
          f"whole page {cold['page_s']:.1f} s")
    print(f"warm, next visitor: whole page {warm['page_s']:.2f} s")
    times = fresh(lambda port: crowd(port, args.class_size))
    print(f"cold, {args.class_size} visitors at once: whole page median {statistics.median(times):.1f} s, "
          f"slowest {max(times):.1f} s (one visitor alone: {cold['page_s']:.1f} s)")
    print(f"load average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
