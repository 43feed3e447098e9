"""Train many configurations on both cores: a small process pool with a result per config.

A class of 30 students on one 2-core server: Streamlit runs every session's script in a
thread of one process, so training runs (NumPy with the GIL held between small matrix
products) would share one core. :class:`TrainPool` sends each run to one of ``workers``
processes (started with ``spawn``: never ``fork`` a threaded server) and keeps one
:class:`concurrent.futures.Future` per distinct :class:`~bn_core.train.TrainConfig`, so

* the two arms of an experiment train at the same time, one per core;
* many sessions asking for the same config share one run (the first submits it, the others
  wait for the same future) and later ones get the finished result at once;
* :meth:`TrainPool.prefetch` queues likely next configs (e.g. every learning rate of the
  slider) that start only when a worker is idle (right after a request, on all workers but
  one: the page that asked is drawing then), in the order asked; a requested run never
  waits behind them: one that finds every worker busy with a prefetch run stops that run
  within a few steps (:class:`Preempted`; it goes back to the front of the queue).

Pure Python and NumPy (no Streamlit): usable from a notebook too::

    pool = TrainPool(workers=2)
    bn, plain = (f.result() for f in pool.submit_many([replace(cfg, norm="bn_before"), cfg]))
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
import time
import types
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

import numpy as np

from bn_core.train import TrainConfig, TrainResult, digits, train, validate_config

__all__ = ["Preempted", "TrainPool", "keep_freed_memory", "train_for_page"]


#: The data a worker trains on, handed over by the parent (see :func:`_receive_data`).
_DATA: dict = {}
#: In a worker: the parent's stop flags, one byte per slot (see :func:`_train_job`).
_STOP: list = []


class Preempted(Exception):
    """A prefetch run stopped early because a requested run needed its worker."""


def train_for_page(config: TrainConfig, progress=None, *, test_batch_stats: bool = True) -> TrainResult:
    """:func:`bn_core.train.train` on the default digits, without the model (small to pickle).

    Adds ``history["wall_time_s"]`` of shape (1,): the whole run's wall time in seconds,
    evaluations included. Never warns (``np.errstate``); a config that cannot train raises
    ``ValueError`` (see :func:`bn_core.train.validate_config`). In a worker the data are the
    parent's :func:`bn_core.train.digits` arrays (the same numbers, so the same run).
    ``progress`` and ``test_batch_stats`` are passed on to :func:`~bn_core.train.train`.
    """
    start = time.perf_counter()
    with np.errstate(all="ignore"):
        result = train(config, data=_DATA.get(config.dtype), progress=progress,
                       test_batch_stats=test_batch_stats)
    result = replace(result, model=None)
    result.history["wall_time_s"] = np.array([time.perf_counter() - start])
    return result


@contextlib.contextmanager
def _bare_main():
    """Hide the parent's ``__main__`` while workers are spawned.

    ``spawn`` re-imports the parent's main module in every child; under ``streamlit run``
    that is Streamlit's command line, which would load all of Streamlit (memory, and "missing
    ScriptRunContext" warnings) into processes that only need NumPy and the core.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def _validate(config: TrainConfig) -> None:
    """:func:`bn_core.train.validate_config` against the digits the workers train on."""
    validate_config(config, int(digits(config.dtype).X_train.shape[0]))


def _failed(future: Future) -> bool:
    """True if ``future`` ended without a result: it raised, or was cancelled (at shutdown).

    (``Future.exception()`` itself raises ``CancelledError`` on a cancelled future.)
    """
    return future.done() and (future.cancelled() or future.exception() is not None)


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 64 << 20) -> bool:
    """Ask glibc's allocator to keep freed memory for reuse (this process); True if it could.

    Every evaluation of a run pushes the whole data set through the network: arrays of
    1797 x 100 values (about 0.7 MB each, a dozen per evaluation). glibc serves such sizes
    with fresh ``mmap`` pages or trims its heap after freeing them, so each evaluation
    faulted in its pages again: about 32,000 page faults per default BN run, ~20 % of its
    time (326 -> 261 ms, and 224 -> 187 ms for the plain run; measured on this machine, peak
    memory unchanged at ~190 MB). Raising the two thresholds keeps the pages mapped between
    evaluations; the numbers computed are the same. A no-op (False) without glibc.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
        return bool(libc.mallopt(m_mmap_threshold, int(mmap_threshold))
                    and libc.mallopt(m_trim_threshold, int(trim_threshold)))
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return False


def _receive_data(splits: dict, stop=None, nice: int = 0) -> None:
    """Worker initializer: keep the parent's data sets (dtype -> DigitsSplit) and stop flags,
    and lower the worker's CPU priority by ``nice`` (see :class:`TrainPool`).

    Loading the data here would import scikit-learn (and SciPy) in every worker, about
    160 MB each; the arrays themselves are under 2 MB. ``stop`` is the pool's shared array
    of stop flags (a ``multiprocessing`` RawArray, shared with the parent). The worker's
    allocator keeps freed memory (:func:`keep_freed_memory`).
    """
    _DATA.update(splits)
    _STOP[:] = [] if stop is None else [stop]
    keep_freed_memory()
    lower_priority(nice)


def lower_priority(nice: int) -> int:
    """Raise the nice value of every thread of this process by ``nice`` (capped at 19).

    On Linux a nice value belongs to a thread, and ``os.nice`` changes only the calling one;
    a worker already has threads of its own when its initializer runs (OpenBLAS starts its
    pool when NumPy is imported, while the worker unpickles its arguments). So each thread
    listed in ``/proc/self/task`` is lowered; elsewhere (no ``/proc``) the whole process.
    Returns how many threads (or processes) were lowered; 0 if ``nice <= 0`` or not allowed.
    """
    if nice <= 0 or not hasattr(os, "setpriority"):
        return 0
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]  # PRIO_PROCESS with 0: this process
    lowered = 0
    for tid in tids:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + int(nice)))
            lowered += 1
    return lowered


def _train_job(config: TrainConfig, slot: int = -1, test_batch_stats: bool = True) -> TrainResult:
    """:func:`train_for_page` in a worker; a prefetch run (``slot >= 0``) can be stopped.

    The training loop reports its progress about 100 times per run (every few milliseconds
    for the page's runs); a prefetch run then checks its stop flag and raises
    :class:`Preempted` when the parent has set it.
    """
    if slot < 0 or not _STOP:
        return train_for_page(config, test_batch_stats=test_batch_stats)
    flags = _STOP[0]

    def check(fraction: float) -> None:
        if fraction < 1.0 and flags[slot]:
            raise Preempted(f"stopped for a requested run: {config}")

    return train_for_page(config, progress=check, test_batch_stats=test_batch_stats)


class TrainPool:
    """A process pool that trains :class:`TrainConfig` runs, one shared future per config.

    Parameters
    ----------
    workers : int
        Worker processes (default: the CPU count, at most 2). ``0`` trains in the calling
        thread (no processes), which is also the fallback if processes cannot start.
    max_results : int
        Finished results kept (least recently used dropped first); a run's result is a few
        tens of kilobytes.
    max_prefetch : int
        Prefetch configs queued at most. The queue runs front first, so when it is full a newer
        config is not queued: it would have been the last to run.
    test_batch_stats : bool
        Whether the runs record ``history["test_acc_batch_stats"]`` (see
        :func:`bn_core.train.train`); ``False`` saves a pass over the test set per evaluation
        for callers that never show it.
    prefetch_workers : int
        Workers that prefetch runs may take when a requested run ends or :meth:`prefetch` is
        called (default ``workers - 1``, at least 1); the remaining workers join in only when
        a prefetch run ends. These are the moments a page is busy drawing: on the two-core
        server, prefetching on both workers right after a page's runs arrived left no core
        for that page, and building its charts took about twice as long as on an idle core
        (~135 against ~60 ms). A prefetch run lasts longer than that, so once a page is done
        every worker prefetches again. Requested runs use every worker.
    nice : int
        How much lower the workers' CPU priority is than the parent's (default 0: the same;
        at most 19, the lowest), for every thread of each worker (:func:`lower_priority`).
        It applies to every run, requested or prefetched. A web server passes a high value so
        that training takes only the cores its event loop leaves (``ui.network.trainer``).

    Notes
    -----
    Requested runs come first. A prefetch run holds a worker for a whole run (about 0.3 s for
    the page's default), and the executor hands each worker its next job only when the
    current one ends, so a request arriving while every worker is prefetching used to wait
    for the end of a run nobody had asked for. Now each running prefetch run has a stop flag
    (a byte in memory shared with the workers, checked about 100 times per run); a request
    that finds no idle worker sets the flag of the most recently started prefetch run nobody
    has asked for, that run raises :class:`Preempted` within a few steps, the request takes
    its worker, and the preempted config goes back to the front of the prefetch queue. A run
    that someone has submitted is never stopped.
    """

    def __init__(self, workers: int | None = None, max_results: int = 256, max_prefetch: int = 40,
                 test_batch_stats: bool = True, prefetch_workers: int | None = None, nice: int = 0):
        if workers is None:
            workers = min(2, os.cpu_count() or 1)
        self.workers = int(workers)
        self.max_results = int(max_results)
        self.max_prefetch = int(max_prefetch)
        self.test_batch_stats = bool(test_batch_stats)
        self.nice = max(0, int(nice))
        self.prefetch_workers = max(1, self.workers - 1 if prefetch_workers is None else int(prefetch_workers))
        self._prefetch_running = 0  # prefetch runs in flight (wanted or not)
        self._lock = threading.RLock()  # a done-callback may run inside submit
        self._futures: OrderedDict[TrainConfig, Future] = OrderedDict()
        self._prefetch: OrderedDict[TrainConfig, None] = OrderedDict()
        self._in_flight = 0
        # running prefetch runs that nobody has asked for (future -> slot), oldest first
        self._unwanted: OrderedDict[Future, int] = OrderedDict()
        self._stopping: set[Future] = set()  # flag set, the worker has not stopped yet
        self._free_slots: list[int] = []
        self._stop = None  # the shared stop flags (one byte per slot)
        self._executor: ProcessPoolExecutor | None = None
        if self.workers > 0:
            try:
                context = multiprocessing.get_context("spawn")
                # one stop flag per worker: a prefetch run holds its slot until it has ended
                # (stopped or not), and one starts only while fewer than `workers` runs are
                # in flight, so at most `workers` hold a slot at once
                self._stop = context.RawArray("b", self.workers)
                self._free_slots = list(range(self.workers))
                self._executor = self._new_executor()
            except (OSError, ValueError, NotImplementedError):  # pragma: no cover - no processes here
                self._executor = None
                self.workers = 0

    def _new_executor(self) -> ProcessPoolExecutor:
        """A ``spawn`` pool of ``workers`` processes holding the digits, all started now."""
        executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_receive_data,
                                       initargs=({d: digits(d) for d in ("float32", "float64")},
                                                 self._stop, self.nice))
        with _bare_main():  # every worker starts now
            # A spawn pool starts a worker on submit only while no worker is idle, and a worker
            # that had finished a warm-up no-op before the next submit counted as idle: CI saw
            # one of two workers started. So start them all at once, as CPython does for a fork
            # pool, before anything is submitted (no manager thread yet: what it asserts).
            # (a private method of CPython's executor, in the 3.11 this runs on; test_parallel.py checks the count.)
            with executor._shutdown_lock:
                executor._launch_processes()
        return executor

    # ------------------------------------------------------------------ submitting

    def _start(self, config: TrainConfig, prefetch: bool = False) -> Future:
        """Submit ``config`` (lock held) and remember its future.

        A prefetch run gets a stop slot (there is always one: see ``__init__``; without one
        it would run unstoppable); a requested run may stop a prefetch run for its worker
        (see the class notes).
        """
        if self._executor is None:
            future: Future = Future()
            try:
                future.set_result(train_for_page(config, test_batch_stats=self.test_batch_stats))
            except Exception as exc:  # noqa: BLE001 - handed to the caller through the future
                future.set_exception(exc)
        else:
            slot = self._free_slots.pop() if prefetch and self._free_slots else -1
            if slot >= 0:
                self._stop[slot] = 0
            try:
                future = self._executor.submit(_train_job, config, slot, self.test_batch_stats)
            except BrokenProcessPool:
                # a worker died (e.g. killed for memory): the executor refuses all work from now
                # on, for every session; its pending futures already hold the error (so they are
                # started again when asked for). Replace it once, then submit again.
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new_executor()
                future = self._executor.submit(_train_job, config, slot, self.test_batch_stats)
            self._in_flight += 1
            self._prefetch_running += prefetch
            if slot >= 0:
                self._unwanted[future] = slot
            elif not prefetch:
                self._make_room()
            future.add_done_callback(lambda f, c=config, k=slot, pre=prefetch: self._finished(f, c, k, pre))
        self._futures[config] = future
        self._trim()
        return future

    def _make_room(self) -> None:
        """Stop prefetch runs (newest first) until the runs not being stopped fit the workers."""
        while self._unwanted and self._in_flight - len(self._stopping) > self.workers:
            future, slot = self._unwanted.popitem(last=True)
            self._stop[slot] = 1
            self._stopping.add(future)

    def _finished(self, future: Future, config: TrainConfig, slot: int, prefetch: bool) -> None:
        with self._lock:
            self._in_flight -= 1
            self._prefetch_running -= prefetch
            self._unwanted.pop(future, None)
            self._stopping.discard(future)
            if slot >= 0:
                self._free_slots.append(slot)
            preempted = (not future.cancelled()) and isinstance(future.exception(), Preempted)
            if preempted and self._futures.get(config) is future:
                # nobody waits for it (a request would have started it again): forget the run and
                # queue it again, first in line, for when a worker is idle
                del self._futures[config]
                self._prefetch[config] = None
                self._prefetch.move_to_end(config, last=False)
                while len(self._prefetch) > self.max_prefetch:  # the queue's bound holds here too
                    self._prefetch.popitem(last=True)
            # after a prefetch run, every worker may prefetch; after a requested run the page
            # that asked for it is drawing now, so one core stays for it (prefetch_workers)
            self._pump(every_worker=prefetch and not preempted)

    def _trim(self) -> None:
        while len(self._futures) > self.max_results:
            oldest = next(iter(self._futures))
            if not self._futures[oldest].done():
                break  # never drop a run that someone may be waiting for
            self._futures.popitem(last=False)

    def _pump(self, every_worker: bool = False) -> None:
        """Start queued prefetch configs while a worker is idle (lock held), on at most
        ``prefetch_workers`` workers at once unless ``every_worker``."""
        limit = self.workers if every_worker else self.prefetch_workers
        while self._prefetch and self._in_flight < self.workers and self._prefetch_running < limit:
            config, _ = self._prefetch.popitem(last=False)
            if config not in self._futures:
                try:
                    self._start(config, prefetch=True)
                except RuntimeError:  # the executor is shutting down (server stopping): drop the rest
                    self._prefetch.clear()
                    return

    def submit(self, config: TrainConfig) -> Future:
        """The future of ``config``'s run: the existing one, or a new run started now.

        A run that failed, was cancelled, or is a prefetch run being stopped is started
        again; a running prefetch run of ``config`` is kept (and will not be stopped). Raises
        ``ValueError`` at once if the config cannot train.
        """
        _validate(config)
        with self._lock:
            future = self._futures.get(config)
            if future is not None and not _failed(future) and future not in self._stopping:
                self._unwanted.pop(future, None)  # someone waits for it now: never stop it
                self._futures.move_to_end(config)
                return future
            self._prefetch.pop(config, None)
            return self._start(config)

    def submit_many(self, configs: Sequence[TrainConfig]) -> list[Future]:
        """:meth:`submit` for each config (they run in parallel, one per worker).

        Put the longest run first: it then gets the first worker that is free.
        """
        return [self.submit(c) for c in configs]

    def prefetch(self, configs: Iterable[TrainConfig]) -> int:
        """Queue ``configs`` to train when a worker is idle; returns how many were queued.

        Configs already trained, running, or that cannot train are skipped. The given order
        is kept (put the likeliest first), behind configs queued by earlier calls: a class
        at one setting keeps its place when one student explores another seed (with the
        latest call first, bench_classroom's class found 8 of its 18 neighbours untrained).
        Once ``max_prefetch`` are queued, the rest of ``configs`` is not (the front of the queue
        runs first, so what is dropped is what would have run last). A requested :meth:`submit`
        never waits for them.
        """
        queued = 0
        with self._lock:
            for config in configs:
                if len(self._prefetch) >= self.max_prefetch and self._executor is not None:
                    self._pump()  # an idle worker takes the front of the queue: room for this one
                if len(self._prefetch) >= self.max_prefetch:
                    break
                if config in self._futures or config in self._prefetch:
                    continue
                try:
                    _validate(config)
                except ValueError:
                    continue
                self._prefetch[config] = None
                queued += 1
            if self._executor is not None:
                self._pump()
        return queued

    # ------------------------------------------------------------------ looking

    def done(self, config: TrainConfig) -> bool:
        """True if ``config``'s result is ready (no waiting)."""
        with self._lock:
            future = self._futures.get(config)
        return future is not None and future.done() and not _failed(future)

    def pending(self) -> int:
        """Runs started and not finished, plus prefetch configs still queued."""
        with self._lock:
            return self._in_flight + len(self._prefetch)

    def shutdown(self) -> None:
        """Stop the workers (queued prefetch configs are dropped)."""
        with self._lock:
            self._prefetch.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
