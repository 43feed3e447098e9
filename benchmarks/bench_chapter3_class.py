"""Chapter 3 for a class: retraining at a new learning rate, alone and with 30 students at once.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_chapter3_class [--students 30] [--values 10]

It measures the training work the page does, the way the page does it, without a browser or
a WebSocket (benchmarks/bench_classroom.py, from the ops helper, drives the real server):

* **now**: ``ui.network.train_arms``' path, :class:`bn_core.parallel.TrainPool` with two
  worker processes (one arm per core), ``RECORDS_PER_RUN`` evaluations per run, one shared
  run per distinct config;
* **before** (main 3248d62): both arms one after the other in the calling thread, 30
  evaluations per run, one shared run per distinct config (``st.cache_data``'s per-key lock),
  sessions as threads of one process (what Streamlit does).

Figures: one student asking for a new learning rate (median of 3 new values), and
``--students`` threads that start together, each picking one of ``--values`` learning rates
of the slider (``i % values``): each student's wait, p50 / p95 / max. Also the resident
memory of this process and of the workers, and the load average (two cores shared with other
work: every figure scales with it). Prefetching is off, so every value is trained on demand.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as a file, not only with -m

from bn_core.parallel import TrainPool
from bn_core.train import TrainConfig, digits, train
from ui import network as net


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def base_config(records: int) -> TrainConfig:
    steps = net.DEFAULT_STEPS
    return TrainConfig(lr=net.DEFAULT_LR, steps=steps, eval_every=max(1, steps // records))


class Before:
    """The old path: both arms in the calling thread, one run per config (a lock per key)."""

    def __init__(self):
        self.results: dict = {}
        self.locks: dict = {}
        self.guard = threading.Lock()

    def run(self, cfg: TrainConfig):
        with self.guard:
            lock = self.locks.setdefault(cfg, threading.Lock())
        with lock:
            if cfg not in self.results:
                self.results[cfg] = train(cfg)
            return self.results[cfg]

    def arms(self, base: TrainConfig) -> None:
        for cfg in (base, replace(base, norm="bn_before")):
            self.run(cfg)


class Now:
    def __init__(self):
        self.pool = TrainPool(workers=2)
        # wait until both workers have started and loaded the data (a server does this once)
        futures = self.pool.submit_many([replace(base_config(2), steps=1, seed=s) for s in (9998, 9999)])
        for f in futures:
            f.result()

    def arms(self, base: TrainConfig) -> None:
        futures = self.pool.submit_many([base, replace(base, norm="bn_before")])
        for f in futures:
            f.result()


def one_student(impl, base: TrainConfig, lrs) -> float:
    times = []
    for lr in lrs:
        t = time.perf_counter()
        impl.arms(replace(base, lr=lr))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def classroom(impl, base: TrainConfig, students: int, values: int) -> list[float]:
    lrs = net.LR_OPTIONS[:values]
    waits = [0.0] * students
    start = threading.Barrier(students)

    def student(i: int) -> None:
        start.wait()
        t = time.perf_counter()
        impl.arms(replace(base, lr=lrs[i % len(lrs)], seed=1))  # seed 1: nothing cached yet
        waits[i] = time.perf_counter() - t

    threads = [threading.Thread(target=student, args=(i,)) for i in range(students)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sorted(waits)


def pct(sorted_values: list[float], q: float) -> float:
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--students", type=int, default=30)
    ap.add_argument("--values", type=int, default=10)
    args = ap.parse_args()
    digits("float32")
    print(f"load average before: {os.getloadavg()}  (2 cores, shared)")
    new_lrs = (1.0, 3.0, 0.1)  # new values, trained for the first time in each implementation
    for name, impl, records in (("before", Before(), 30), ("now", Now(), net.RECORDS_PER_RUN)):
        base = base_config(records)
        one = one_student(impl, base, new_lrs)
        print(f"{name:6s} one student, new learning rate: both arms {one:.2f} s (median of {len(new_lrs)}; "
              f"{records} evaluations per run)  load {os.getloadavg()[0]:.1f}")
        waits = classroom(impl, base, args.students, args.values)
        mem = rss_mb(os.getpid())
        if isinstance(impl, Now):
            mem_workers = sum(rss_mb(p.pid) for p in impl.pool._executor._processes.values())
            extra = f", workers {mem_workers:.0f} MB"
        else:
            extra = ""
        print(f"{name:6s} {args.students} students, {args.values} distinct learning rates: wait p50 "
              f"{pct(waits, 0.5):.2f} s, p95 {pct(waits, 0.95):.2f} s, max {waits[-1]:.2f} s; "
              f"RSS this process {mem:.0f} MB{extra}  load {os.getloadavg()[0]:.1f}")
        if isinstance(impl, Now):
            impl.pool.shutdown()
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
