"""Chapter 3's default view: time to train both arms, and the page's first and cached runs.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_chapter3_default

Budget (issue 3): the default settings train both arms (plain and BN) in <= 2 s. Prints

* the core alone: ``train`` for the page's default config, plain then BN, repeated (median, min);
  the step loop (sum of ``step_time``) and the rest (evaluations every ``eval_every`` steps,
  setup) separately;
* the page through AppTest: a cold first run (cache miss: both arms train) and several reruns
  of chapter 3 with nothing changed (cache hits: what every widget interaction that does not
  retrain costs), median / min / max;
* the load average, since every figure scales with it on a shared two-core machine.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as a file, not only with -m

from bn_core.train import TrainConfig, digits, train

APP = str(Path(__file__).resolve().parents[1] / "app.py")
BUDGET_S = 2.0
WARM_RERUNS = 7


def page_defaults() -> TrainConfig:
    """The config the page trains with its defaults (the chapter's constants in ui/network.py)."""
    from ui import network as net

    steps = net.DEFAULT_STEPS
    return TrainConfig(lr=net.DEFAULT_LR, steps=steps, eval_every=max(1, steps // net.RECORDS_PER_RUN))


def main() -> None:
    print(f"load average before: {os.getloadavg()}")
    base = page_defaults()
    print(f"default config: {base}")
    digits()  # the data set is loaded once per process; not part of a training run
    totals, loops = [], []
    for _ in range(5):
        t = time.perf_counter()
        runs = [train(replace(base, norm=n)) for n in ("none", "bn_before")]
        totals.append(time.perf_counter() - t)
        loops.append(sum(float(np.sum(r.history["step_time"])) for r in runs))
    accs = [round(float(r.history["test_acc"][-1]), 3) for r in runs]
    print(f"both arms, core only: median {statistics.median(totals):.2f} s, min {min(totals):.2f} s "
          f"(budget {BUDGET_S:.1f} s); step loops {statistics.median(loops):.2f} s, "
          f"evaluations and setup {statistics.median(totals) - statistics.median(loops):.2f} s")
    print(f"final test accuracy plain / BN: {accs[0]} / {accs[1]}")
    for r in runs:
        print(f"  {r.config.norm:10s} median step {1e3 * float(np.median(r.history['step_time'])):.3f} ms")

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=300)
    at.run()  # chapter 1, so that st.navigation has registered the pages (AppTest.switch_page docs)
    at.switch_page("pages/3_bn-in-network.py")
    t = time.perf_counter()
    at.run()
    cold = time.perf_counter() - t
    assert not at.exception, at.exception
    warm = []
    for _ in range(WARM_RERUNS):
        t = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - t)
        assert not at.exception, at.exception
    # make sure the reruns measured chapter 3, not the default page
    assert at.title and at.title[0].value.startswith("3 ·"), [t.value for t in at.title]
    print(f"page through AppTest: first run {cold:.2f} s (imports, data, both arms, charts)")
    print(f"chapter 3 rerun with nothing changed (cache hits), {WARM_RERUNS} reruns: "
          f"median {statistics.median(warm):.3f} s, min {min(warm):.3f} s, max {max(warm):.3f} s")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
