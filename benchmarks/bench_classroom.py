"""A class at once: N simulated students on one ``streamlit run`` over its WebSocket (127.0.0.1).

Run from the repository root (either form)::

    .venv/bin/python -m benchmarks.bench_classroom [--students 30] [--moves 3]
    .venv/bin/python benchmarks/bench_classroom.py --port 8501 --pid 1234   # a running server
    .venv/bin/python -m benchmarks.bench_classroom --replicas 2   # 2 replicas behind deploy/'s nginx

Each student is a :class:`benchmarks.st_client.Session`: the messages a browser tab sends (the
page's first run, then slider moves with every widget's value), timed from sending until the
server's ``script_finished``; no browser rendering (``bench_browser`` measures that). One fresh
server (headless, no file watcher, no usage stats; the flags the tests use) serves, in order:

1. a warm-up: one session opens chapter 1 and one chapter 3 (imports, data, default runs);
2. new sessions on the warm server: ``--new`` sessions open chapter 1 one after the other,
   first with nobody else connected, then with the teacher's session connected (it opens
   chapter 1 and stays connected to the end, as the projected tab does in a lecture). The two
   differ because Streamlit 1.67 drops its compiled page scripts whenever the last session
   disconnects (``WebsocketSessionManager.disconnect_session``), so a lone visitor's first run
   compiles the page again;
3. one student on chapter 3 changes the learning rate to a value not computed yet (with a
   different seed in the link, so the class below still finds its own values uncomputed);
4. the class opens chapter 1 at once (N students released by one barrier; connecting counts);
   right after its page has arrived, each student moves the step-size slider ``--moves``
   times, ``--pause`` s apart, to values drawn from the slider's options (seeded per student):
   the worst case, 30 moves within a few milliseconds of each other, every ``--pause`` s. Then
   each moves ``--moves`` times more at a person's own pace: every wait ``--pause`` s plus a
   uniform 0-``--spread`` s (the class has the page; the teacher said "now move it");
5. the class opens chapter 3 at once, then all pick a learning rate at the same moment:
   student i takes the i-th (mod K) of K = 10 distinct values of the slider (fewer if the
   slider has fewer values besides its default), none asked for before. The chapter's
   ``TrainPool`` prefetches the slider's other values on idle workers while the class opens the
   page, as it does in a lecture, so this phase measures mostly the pool's prefetching and
   cache hits, not 30 trainings from scratch; phase 3 measures a requested training;
6. the server's resident memory (VmRSS and its peak VmHWM, from /proc) with the class connected.

With ``--replicas N`` the students reach N replicas through nginx running deploy/'s template on
127.0.0.1 (each WebSocket hashed to one replica, as a browser with its route cookie is); the
memory is then the replicas' sum.

Every phase prints p50 / p95 / max (linear percentiles over all students' requests). Every wait
is bounded: each run by ``--run-timeout`` s, the whole benchmark by ``--timeout`` s. The load
average is printed before and after: on 2 shared cores, figures move with it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as a file, not only with -m

from benchmarks import st_client

#: The chapters the class uses: URL path of the page and the key slider's widget key.
CHAPTER_1 = ("valley-vs-bowl", "c1_frac")
CHAPTER_3 = ("bn-in-network", "c3_lr")
DISTINCT_LRS = 10
#: The issue's targets (issue 11), printed beside the figures.
TARGETS = {
    "new session, first run": "<= 100 ms",
    "chapter 1, class opens at once": "p95 <= 1.5 s",
    "chapter 1, step-size moves": "p95 <= 200 ms",
    "chapter 3, one student, new learning rate": "<= 0.5 s",
    "chapter 3, class picks learning rates": "p95 <= 3 s",
    "server memory": "<= 690 MB",
}


@dataclass
class Phase:
    """The timings of one phase, in ms, and what went wrong."""

    label: str
    ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, run: st_client.Run) -> None:
        with self.lock:
            if run.ok:
                self.ms.append(run.ms)
            else:
                self.errors.append(f"status {run.status}, exceptions {run.exceptions[:1]}")

    def fail(self, err: BaseException) -> None:
        with self.lock:
            self.errors.append(f"{type(err).__name__}: {err}"[:200])

    def line(self) -> str:
        p = st_client.percentile
        target = TARGETS.get(self.label, "")
        if not self.ms:
            text = "no successful run"
        else:
            text = (f"p50 {p(self.ms, 50):7.0f} ms   p95 {p(self.ms, 95):7.0f} ms   "
                    f"max {max(self.ms):7.0f} ms   (n = {len(self.ms)})")
        extra = f"   target {target}" if target else ""
        errs = f"   ERRORS {len(self.errors)}: {self.errors[:2]}" if self.errors else ""
        return f"  {self.label:<44} {text}{extra}{errs}"


def run_class(n: int, deadline: float, work) -> None:
    """Run ``work(i, barrier)`` for students 0..n-1 in threads; all bounded by ``deadline``."""
    barrier = threading.Barrier(n)
    threads = [threading.Thread(target=work, args=(i, barrier), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        barrier.abort()
        raise SystemExit("the class did not finish within --timeout; figures above are partial")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=30, help="students in the class (default 30)")
    ap.add_argument("--moves", type=int, default=3, help="step-size moves per student (default 3)")
    ap.add_argument("--pause", type=float, default=0.5, help="seconds between a student's moves")
    ap.add_argument("--new", type=int, default=10, help="new sessions timed one after the other")
    ap.add_argument("--spread", type=float, default=2.0,
                    help="the own-pace moves: each wait is --pause plus uniform 0..SPREAD s (default 2)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the students' slider choices")
    ap.add_argument("--port", type=int, help="a running server on 127.0.0.1 instead of a fresh one")
    ap.add_argument("--pid", type=int, help="with --port: the server's process id, for its memory")
    ap.add_argument("--replicas", type=int, default=1,
                    help="replicas behind a local nginx (deploy/'s template; needs nginx), default 1: no proxy")
    ap.add_argument("--run-timeout", type=float, default=120, help="seconds one run may take")
    ap.add_argument("--timeout", type=float, default=900, help="seconds the whole benchmark may take")
    args = ap.parse_args()
    if not 1 <= args.students <= 200:
        raise SystemExit("--students must be between 1 and 200")
    deadline = time.monotonic() + args.timeout
    print(f"load average {[round(x, 2) for x in os.getloadavg()]} (before); {args.students} students, "
          f"{args.moves} moves each {args.pause:g} s apart; {os.cpu_count()} cores")
    sessions: list[st_client.Session] = []
    with contextlib.ExitStack() as stack:
        procs: list = []
        stack.callback(_close, sessions, procs)
        if args.port:
            port, pids = args.port, [args.pid] if args.pid else []
        elif args.replicas == 1:
            proc, port = st_client.start_server()
            procs.append(proc)
            pids = [proc.pid]
        else:  # deploy/'s nginx template in front of N replicas, each student on one of them
            from deploy import nginx_conf

            ports = [st_client.free_port() for _ in range(args.replicas)]
            procs.extend(st_client.launch_server(p) for p in ports)
            for p, proc in zip(ports, procs, strict=True):
                if not st_client.wait_healthy(f"http://{st_client.HOST}:{p}", proc=proc):
                    raise SystemExit(f"replica on port {p} did not start")
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bnlab-nginx-")))
            port = stack.enter_context(nginx_conf.local_proxy([f"{st_client.HOST}:{p}" for p in ports], workdir))
            pids = [proc.pid for proc in procs]
            for p in ports:  # each replica's first visitor, directly (not part of the figures)
                for page in (CHAPTER_1[0], CHAPTER_3[0]):
                    with st_client.Session(p, page, timeout_s=args.run_timeout) as s:
                        s.rerun()
            print(f"  {args.replicas} replicas behind nginx (deploy/nginx/bnlab.conf.template) on port {port}")
        phases = measure(port, args, deadline, sessions)
        for ph in phases:
            print(ph.line())
        if pids:
            mem = [st_client.rss_mb(pid) for pid in pids]
            rss, peak = sum(m[0] for m in mem), sum(m[1] for m in mem)
            where = "server" if len(pids) == 1 else f"{len(pids)} replicas together"
            print(f"  {'server memory':<44} {rss:7.0f} MB resident ({where}) with {len(sessions)} sessions open, "
                  f"peak {peak:.0f} MB   target {TARGETS['server memory']} per server")
    print(f"load average {[round(x, 2) for x in os.getloadavg()]} (after)")


def _close(sessions: list, procs: list) -> None:
    for s in sessions:
        try:
            s.close()
        except Exception:  # noqa: BLE001 - a session the server already dropped
            pass
    for proc in procs:
        st_client.stop_server(proc)


def measure(port: int, args, deadline: float, sessions: list) -> list[Phase]:
    timeout = args.run_timeout
    open_session = lambda page, query="": st_client.Session(port, page, query, timeout_s=timeout)  # noqa: E731

    # 1. Warm-up: what the first visitor of a fresh server pays, not part of the figures.
    t = time.perf_counter()
    with open_session(CHAPTER_1[0]) as s1:
        s1.rerun()
        frac_options = s1.options(CHAPTER_1[1])
    with open_session(CHAPTER_3[0]) as s3:
        s3.rerun()
        lr_options = s3.options(CHAPTER_3[1])
        lr_default = s3.shown(CHAPTER_3[1])
    print(f"  warm-up (chapters 1 and 3, first visitor)    {(time.perf_counter() - t) * 1e3:7.0f} ms")
    new_lrs = [v for v in lr_options if v not in lr_default][:DISTINCT_LRS]

    # 2. New sessions on a warm server, one after the other: alone, then with the teacher connected.
    lone = Phase("new session, first run, nobody else on")
    for _ in range(args.new):
        with open_session(CHAPTER_1[0]) as s:
            lone.add(s.rerun())
    teacher = open_session(CHAPTER_1[0])
    sessions.append(teacher)  # closed at the end, with the class
    teacher.rerun()
    fresh = Phase("new session, first run")
    for _ in range(args.new):
        with open_session(CHAPTER_1[0]) as s:
            fresh.add(s.rerun())

    # 3. One student, chapter 3, a learning rate not computed yet (another seed: another cache entry).
    one = Phase("chapter 3, one student, new learning rate")
    with open_session(CHAPTER_3[0], "c3_seed=1") as s:
        s.rerun()
        one.add(s.rerun({CHAPTER_3[1]: new_lrs[len(new_lrs) // 2]}))

    # 4. The class opens chapter 1 at once, then moves the step size.
    opens, moves = Phase("chapter 1, class opens at once"), Phase("chapter 1, step-size moves")
    first_moves = Phase("chapter 1, each student's first move")
    own_pace = Phase("chapter 1, step-size moves, own pace")

    def chapter_1(i: int, barrier: threading.Barrier) -> None:
        rng = random.Random(args.seed * 1000 + i)
        try:
            barrier.wait(timeout=60)
            t0 = time.perf_counter()
            s = open_session(CHAPTER_1[0])
            with opens.lock:
                sessions.append(s)
            run = s.rerun()
            run.ms = (time.perf_counter() - t0) * 1e3  # connecting counts: the page is not there before
            opens.add(run)
            current = s.shown(CHAPTER_1[1])[0]
            for m in range(args.moves):
                time.sleep(args.pause)
                value = rng.choice([v for v in frac_options if v != current])
                current = value
                run = s.rerun({CHAPTER_1[1]: value})
                moves.add(run)
                if m == 0:
                    first_moves.add(run)
            for _ in range(args.moves):
                time.sleep(args.pause + rng.uniform(0, args.spread))
                value = rng.choice([v for v in frac_options if v != current])
                current = value
                own_pace.add(s.rerun({CHAPTER_1[1]: value}))
        except Exception as e:  # noqa: BLE001 - reported with the figures
            opens.fail(e)

    run_class(args.students, deadline, chapter_1)

    # 5. The class opens chapter 3 at once, then every student picks a learning rate at once.
    opens3 = Phase("chapter 3, class opens at once")
    picks = Phase("chapter 3, class picks learning rates")

    def chapter_3(i: int, barrier: threading.Barrier) -> None:
        try:
            barrier.wait(timeout=60)
            s = open_session(CHAPTER_3[0])
            with opens3.lock:
                sessions.append(s)
            opens3.add(s.rerun())
            barrier.wait(timeout=max(1.0, deadline - time.monotonic()))  # everyone has the page
            picks.add(s.rerun({CHAPTER_3[1]: new_lrs[i % len(new_lrs)]}))
        except Exception as e:  # noqa: BLE001 - reported with the figures
            picks.fail(e)

    run_class(args.students, deadline, chapter_3)
    picks.label = "chapter 3, class picks learning rates"
    print(f"  (chapter 3: {min(args.students, len(new_lrs))} distinct learning rates "
          f"{new_lrs[:args.students]}, default {lr_default}; one student used {new_lrs[len(new_lrs) // 2]} "
          f"with c3_seed=1)")
    return [lone, fresh, one, opens, moves, first_moves, own_pace, opens3, picks]


if __name__ == "__main__":
    main()
