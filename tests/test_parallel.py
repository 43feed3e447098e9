"""bn_core.parallel.TrainPool: the same results as train(), one run per config, prefetch never first."""

import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bn_core.parallel import TrainPool, train_for_page
from bn_core.train import TrainConfig, train

BASE = TrainConfig(depth=2, width=16, steps=30, eval_every=10)
RECORDED = ("step", "train_loss", "train_acc", "test_acc", "act_pct", "grad_norm", "batch_loss")


@pytest.fixture(scope="module")
def pool():
    p = TrainPool(workers=2)
    yield p
    p.shutdown()


def assert_same_run(a, b):
    assert a.config == b.config and a.diverged_at == b.diverged_at
    for key in RECORDED:
        assert np.array_equal(a.history[key], b.history[key], equal_nan=True), key


def test_pool_results_equal_train_and_carry_the_wall_time(pool):
    configs = [BASE, replace(BASE, norm="bn_before"), replace(BASE, lr=30.0, activation="relu", init_scale=3.0)]
    for future, cfg in zip(pool.submit_many(configs), configs, strict=True):
        got = future.result(timeout=120)
        assert_same_run(got, train(cfg))
        assert got.model is None and got.history["wall_time_s"].shape == (1,)


def _thread_nice_values(pid: int) -> list[int]:
    """The nice value of every thread of process ``pid`` (field 19 of /proc/<pid>/task/*/stat)."""
    return [int(stat.read_text().rsplit(")", 1)[1].split()[16]) for stat in Path(f"/proc/{pid}/task").glob("*/stat")]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads threads from /proc (Linux)")
def test_workers_run_every_thread_below_the_parent_s_cpu_priority(pool):
    """A web server's event loop answers every student: its training workers can yield the cores."""
    parent = os.getpriority(os.PRIO_PROCESS, 0)
    low = TrainPool(workers=2, nice=5)
    try:
        assert low.submit(BASE).result(timeout=120).config == BASE  # it still trains
        workers = list(low._executor._processes)
        assert len(workers) == 2
        for pid in workers:
            values = _thread_nice_values(pid)
            assert len(values) >= 1 and set(values) == {min(parent + 5, 19)}, (pid, values)
    finally:
        low.shutdown()
    for pid in pool._executor._processes:  # the default: the parent's priority
        assert set(_thread_nice_values(pid)) == {parent}


def test_every_worker_starts_even_when_the_first_is_idle_before_the_second_submit(monkeypatch):
    """A worker that finished its warm-up before the next submit counts as idle, so that submit
    spawns nobody; the pool still starts all of its workers at once (CI saw one of two)."""
    import concurrent.futures

    import bn_core.parallel as parallel

    class FirstIdleEarly(concurrent.futures.ProcessPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            future = super().submit(fn, *args, **kwargs)
            if not getattr(self, "_early", False):  # the token a finished no-op would leave
                self._early = True
                self._idle_worker_semaphore.release()
            return future

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", FirstIdleEarly)
    p = TrainPool(workers=2)
    try:
        assert len(p._executor._processes) == 2
        assert p.submit(BASE).result(timeout=120).config == BASE
    finally:
        p.shutdown()


def test_one_future_per_config_shared_by_every_caller(pool):
    cfg = replace(BASE, seed=3)
    first, again = pool.submit(cfg), pool.submit(replace(BASE, seed=3))
    assert first is again
    first.result(timeout=120)
    assert pool.done(cfg) and pool.submit(cfg) is first


def test_a_config_that_cannot_train_raises_at_once(pool):
    with pytest.raises(ValueError, match="batch of 1 sample"):
        pool.submit(replace(BASE, norm="bn_before", batch_size=1))


def test_prefetch_runs_only_on_idle_workers_and_fills_the_cache(pool):
    wanted = replace(BASE, seed=11)
    extra = [replace(BASE, seed=11, lr=v) for v in (0.01, 0.03, 0.3, 1.0)]
    assert pool.prefetch(extra) == len(extra)
    assert pool._in_flight <= pool.workers  # the rest wait outside the executor's queue
    future = pool.submit(wanted)  # submitted after the prefetch, yet not queued behind it
    assert_same_run(future.result(timeout=120), train(wanted))
    deadline = time.monotonic() + 120  # a bound in time, not in polls: a slow machine needs longer
    while not all(pool.done(c) for c in extra) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(pool.done(c) for c in extra)
    assert pool.prefetch(extra) == 0  # already there


def test_prefetch_leaves_a_core_to_the_caller_but_a_request_uses_every_worker(pool):
    assert pool.workers == 2 and pool.prefetch_workers == 1
    extra = [replace(BASE, width=64, steps=3000, seed=12, lr=v) for v in (0.01, 0.03, 0.1, 0.3)]
    pool.prefetch(extra)
    assert pool._prefetch_running == 1 and pool._in_flight == 1  # the other worker stays idle
    wanted = [replace(BASE, seed=13), replace(BASE, seed=13, norm="bn_before")]
    futures = pool.submit_many(wanted)
    assert pool._in_flight - len(pool._stopping) == 2  # both requests run now, one per worker
    for future, cfg in zip(futures, wanted, strict=True):
        assert_same_run(future.result(timeout=120), train(cfg))
    with pool._lock:  # right after the requests: one worker prefetches, one stays free
        assert pool._prefetch_running <= 1
    peak = 0
    deadline = time.monotonic() + 120  # a bound in time: 6 s of polls was too short on a slow machine
    while time.monotonic() < deadline:  # once a prefetch run has ended, both workers prefetch
        with pool._lock:
            peak = max(peak, pool._prefetch_running)
        if all(pool.done(c) for c in extra):
            break
        time.sleep(0.01)
    assert peak == 2 and all(pool.done(c) for c in extra)


def test_in_process_fallback_gives_the_same_runs():
    p = TrainPool(workers=0)
    assert_same_run(p.submit(BASE).result(), train_for_page(BASE))
    assert p.prefetch([replace(BASE, seed=5)]) == 1 and p.pending() == 1  # nothing runs it: no workers


def test_a_sweep_trained_in_the_pool_equals_the_sweep_in_process(pool):
    from bn_core.experiments import sweep

    base = replace(BASE, steps=20, eval_every=20)
    values, norms = [0.1, 1.0, 30.0], ("none", "bn_before")
    pool.submit_many([replace(base, norm=n, lr=v) for n in norms for v in values])
    got = sweep(base, "lr", values, norms, train_fn=lambda c, data=None, progress=None: pool.submit(c).result())
    want = sweep(base, "lr", values, norms)
    assert got.keys() == want.keys()
    for k in want:
        assert np.array_equal(got[k], want[k]), k


def test_a_dead_worker_does_not_break_the_pool_for_good():
    """A worker killed (e.g. for memory) breaks a ProcessPoolExecutor for every later submit;
    the pool replaces it, and a run that failed with it trains again when asked for."""
    import os
    import signal

    p = TrainPool(workers=1)
    try:
        assert p.workers == 1
        p.submit(BASE).result(timeout=120)
        (pid,) = list(p._executor._processes)
        running = p.submit(replace(BASE, steps=3000, seed=21))  # killed mid-run
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(Exception):  # noqa: B017 - BrokenProcessPool, from the dead worker
            running.result(timeout=120)
        again = p.submit(replace(BASE, steps=3000, seed=21))
        assert again is not running
        cfg = replace(BASE, seed=22)
        assert_same_run(p.submit(cfg).result(timeout=120), train(cfg))
        again.result(timeout=300)
    finally:
        p.shutdown()


def test_a_cancelled_run_counts_as_not_done_and_is_started_again():
    from concurrent.futures import Future

    p = TrainPool(workers=0)
    cancelled = Future()
    assert cancelled.cancel()  # what shutdown(cancel_futures=True) leaves behind
    p._futures[BASE] = cancelled
    assert not p.done(BASE)
    again = p.submit(BASE)
    assert again is not cancelled
    assert_same_run(again.result(), train_for_page(BASE))


def test_prefetch_skips_what_submit_refuses():
    p = TrainPool(workers=0)
    too_big = replace(BASE, batch_size=100_000)
    with pytest.raises(ValueError):
        p.submit(too_big)
    assert p.prefetch([too_big]) == 0 and p.pending() == 0


def test_a_request_stops_a_prefetch_run_that_holds_the_only_worker():
    """With every worker prefetching, a requested run does not wait for the end of a run
    nobody asked for: the prefetch run stops (Preempted) and is queued again, first in line,
    and trains to the same result later."""
    from bn_core.parallel import Preempted

    p = TrainPool(workers=1)
    try:
        long_run = replace(BASE, width=64, steps=20_000, eval_every=20_000, seed=31)
        assert p.prefetch([long_run]) == 1
        prefetched = p._futures[long_run]
        wanted = replace(BASE, seed=32)
        assert_same_run(p.submit(wanted).result(timeout=120), train(wanted))
        with pytest.raises(Preempted):
            prefetched.result(timeout=120)
        for _ in range(1200):  # queued again, and trained once the worker is idle
            if p.done(long_run):
                break
            time.sleep(0.1)
        again = p.submit(long_run)
        assert again is not prefetched
        assert_same_run(again.result(timeout=300), train(long_run))
    finally:
        p.shutdown()


def test_a_prefetch_run_someone_asked_for_is_not_stopped():
    p = TrainPool(workers=1)
    try:
        first = replace(BASE, width=64, steps=3000, seed=33)
        p.prefetch([first])
        asked = p.submit(first)  # the running prefetch run is kept for this caller...
        assert asked is p._futures[first]
        other = replace(BASE, seed=34)
        p.submit(other).result(timeout=120)  # ...and a later request does not stop it
        assert_same_run(asked.result(timeout=120), train(first))
    finally:
        p.shutdown()


def test_prefetch_keeps_earlier_calls_first_and_queues_nothing_beyond_its_bound():
    p = TrainPool(workers=0, max_prefetch=4)  # nothing runs: the queue can be read
    a, b, c, d, e = (replace(BASE, seed=s) for s in range(40, 45))
    assert p.prefetch([a, b]) == 2
    assert p.prefetch([c, a]) == 1  # a is queued already: it keeps its place
    assert list(p._prefetch) == [a, b, c]
    assert p.prefetch([d, e]) == 1  # full after d: e would have run last, so it is not queued
    assert list(p._prefetch) == [a, b, c, d]  # the class's configs, queued first, keep their places


def test_a_stopped_prefetch_run_goes_first_in_line_and_the_queue_keeps_its_bound():
    from concurrent.futures import Future

    from bn_core.parallel import Preempted

    p = TrainPool(workers=0, max_prefetch=3)
    a, b, c, stopped = (replace(BASE, seed=s) for s in range(50, 54))
    assert p.prefetch([a, b, c]) == 3
    future = Future()
    future.set_exception(Preempted("stopped for a requested run"))
    p._futures[stopped], p._in_flight, p._prefetch_running = future, 1, 1  # as _start leaves a run
    p._finished(future, stopped, -1, True)
    assert list(p._prefetch) == [stopped, a, b]  # first in line; the last of the full queue makes room
    assert stopped not in p._futures and p._in_flight == 0 and p._prefetch_running == 0


def test_workers_keep_freed_memory_on_glibc(pool):
    """The allocator setting the worker initializer makes (keep_freed_memory) is accepted in a worker."""
    import platform

    from bn_core.parallel import keep_freed_memory

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert pool._executor.submit(keep_freed_memory).result(timeout=60) is True
