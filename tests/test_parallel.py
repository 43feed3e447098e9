"""bn_core.parallel.TrainPool: the same results as train(), one run per config, prefetch never first."""

import time
from dataclasses import replace

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
    for _ in range(600):
        if all(pool.done(c) for c in extra):
            break
        time.sleep(0.1)
    assert all(pool.done(c) for c in extra)
    assert pool.prefetch(extra) == 0  # already there


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
