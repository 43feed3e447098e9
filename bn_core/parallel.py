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
  slider) that start only when a worker is idle, so a requested run never waits behind them.

Pure Python and NumPy (no Streamlit): usable from a notebook too::

    pool = TrainPool(workers=2)
    plain, bn = (f.result() for f in pool.submit_many([cfg, replace(cfg, norm="bn_before")]))
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
from dataclasses import replace

import numpy as np

from bn_core.train import TrainConfig, TrainResult, digits, train, validate_config

__all__ = ["TrainPool", "train_for_page"]


#: The data a worker trains on, handed over by the parent (see :func:`_receive_data`).
_DATA: dict = {}


def train_for_page(config: TrainConfig) -> TrainResult:
    """:func:`bn_core.train.train` on the default digits, without the model (small to pickle).

    Adds ``history["wall_time_s"]`` of shape (1,): the whole run's wall time in seconds,
    evaluations included. Never warns (``np.errstate``); a config that cannot train raises
    ``ValueError`` (see :func:`bn_core.train.validate_config`). In a worker the data are the
    parent's :func:`bn_core.train.digits` arrays (the same numbers, so the same run).
    """
    start = time.perf_counter()
    with np.errstate(all="ignore"):
        result = train(config, data=_DATA.get(config.dtype))
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


def _noop() -> None:
    return None


def _receive_data(splits: dict) -> None:
    """Worker initializer: keep the parent's data sets (dtype -> DigitsSplit).

    Loading them here would import scikit-learn (and SciPy) in every worker, about 160 MB
    each; the arrays themselves are under 2 MB.
    """
    _DATA.update(splits)


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
        Queued prefetch configs kept; newer requests push out older ones.
    """

    def __init__(self, workers: int | None = None, max_results: int = 256, max_prefetch: int = 40):
        if workers is None:
            workers = min(2, os.cpu_count() or 1)
        self.workers = int(workers)
        self.max_results = int(max_results)
        self.max_prefetch = int(max_prefetch)
        self._lock = threading.RLock()  # a done-callback may run inside submit
        self._futures: OrderedDict[TrainConfig, Future] = OrderedDict()
        self._prefetch: OrderedDict[TrainConfig, None] = OrderedDict()
        self._in_flight = 0
        self._executor: ProcessPoolExecutor | None = None
        if self.workers > 0:
            try:
                self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                     initializer=_receive_data,
                                                     initargs=({d: digits(d) for d in ("float32", "float64")},))
                with _bare_main():  # every worker starts now (one per submit while none is idle)
                    for _ in range(self.workers):
                        self._executor.submit(_noop)
            except (OSError, ValueError, NotImplementedError):  # pragma: no cover - no processes here
                self._executor = None
                self.workers = 0

    # ------------------------------------------------------------------ submitting

    def _start(self, config: TrainConfig) -> Future:
        """Submit ``config`` (lock held) and remember its future."""
        if self._executor is None:
            future: Future = Future()
            try:
                future.set_result(train_for_page(config))
            except Exception as exc:  # noqa: BLE001 - handed to the caller through the future
                future.set_exception(exc)
        else:
            future = self._executor.submit(train_for_page, config)
            self._in_flight += 1
            future.add_done_callback(self._finished)
        self._futures[config] = future
        self._trim()
        return future

    def _finished(self, _future: Future) -> None:
        with self._lock:
            self._in_flight -= 1
            self._pump()

    def _trim(self) -> None:
        while len(self._futures) > self.max_results:
            oldest = next(iter(self._futures))
            if not self._futures[oldest].done():
                break  # never drop a run that someone may be waiting for
            self._futures.popitem(last=False)

    def _pump(self) -> None:
        """Start queued prefetch configs while a worker is idle (lock held)."""
        while self._prefetch and self._in_flight < self.workers:
            config, _ = self._prefetch.popitem(last=False)
            if config not in self._futures:
                try:
                    self._start(config)
                except RuntimeError:  # the executor is shutting down (server stopping): drop the rest
                    self._prefetch.clear()
                    return

    def submit(self, config: TrainConfig) -> Future:
        """The future of ``config``'s run: the existing one, or a new run started now.

        A run that failed is started again. Raises ``ValueError`` at once if the config
        cannot train.
        """
        validate_config(config, int(digits(config.dtype).X_train.shape[0]))
        with self._lock:
            future = self._futures.get(config)
            if future is not None and not (future.done() and future.exception() is not None):
                self._futures.move_to_end(config)
                return future
            self._prefetch.pop(config, None)
            return self._start(config)

    def submit_many(self, configs: Sequence[TrainConfig]) -> list[Future]:
        """:meth:`submit` for each config (they run in parallel, one per worker)."""
        return [self.submit(c) for c in configs]

    def prefetch(self, configs: Iterable[TrainConfig]) -> int:
        """Queue ``configs`` to train when a worker is idle; returns how many were queued.

        Configs already trained, running, or that cannot train are skipped. The given order
        is kept (put the likeliest first); a requested :meth:`submit` never waits for them.
        """
        queued = 0
        with self._lock:
            for config in configs:
                if config in self._futures or config in self._prefetch:
                    continue
                try:
                    validate_config(config)
                except ValueError:
                    continue
                self._prefetch[config] = None
                queued += 1
            while len(self._prefetch) > self.max_prefetch:
                self._prefetch.popitem(last=False)
            if self._executor is not None:
                self._pump()
        return queued

    # ------------------------------------------------------------------ looking

    def done(self, config: TrainConfig) -> bool:
        """True if ``config``'s result is ready (no waiting)."""
        with self._lock:
            future = self._futures.get(config)
        return future is not None and future.done() and future.exception() is None

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
