"""Stability map: 40 step sizes x 8 batch sizes x all four variants, vectorized vs one run per cell.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_stability_map

``bn_core.regression.stability_map`` runs, for each batch size, every variant and every step
size in ONE optimizer loop (parameters stacked as (4 variants, 40 step sizes, 3)). It is compared
with the obvious alternative, one ``bn_core.regression.run`` per cell, measured on the full-batch
row (160 runs) and on the whole map for plain gradient descent. The setting is the page's
default: seed 42, n 100, 100 epochs, fractions 0.01..1.5 of each variant's 2/lambda_max.
Target: <= 1 s for the whole map.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as a file, not only with -m

from bn_core import regression as R
from bn_core.data import make_regression


def main() -> None:
    d = make_regression(seed=42, n=100, noise=0.1)
    xs = np.geomspace(0.01, 1.5, 40)
    bss = R.default_batch_sizes(100)
    epochs = 100
    steps = sum(epochs * R.steps_per_epoch(100, int(b)) for b in bss)
    print(
        f"load average {np.round(os.getloadavg(), 2).tolist()}; batch sizes {bss.tolist()}; {epochs} epochs "
        f"= {steps} optimizer steps per cell row, 40 x {len(bss)} x 4 = {40 * len(bss) * 4} cells"
    )
    for opt in ("gd", "momentum", "adam"):
        R.stability_map(d.X, d.y, R.VARIANTS, xs, "fraction", bss[:2], 2, opt)  # warm-up
        t = time.perf_counter()
        m = R.stability_map(d.X, d.y, R.VARIANTS, xs, "fraction", bss, epochs, opt)
        el = time.perf_counter() - t
        print(
            f"vectorized map, {opt:<9}: {el:6.3f} s  (target <= 1 s; {int(m.diverged.sum())} cells diverged, "
            f"{int(m.undefined.sum())} undefined)"
        )

    problems = [R.make_problem(d.X, d.y, v) for v in R.VARIANTS]
    lam = [np.linalg.eigvalsh(p.hessian)[-1] for p in problems]
    t = time.perf_counter()
    for p, lm in zip(problems, lam, strict=True):
        for x in xs:
            R.run(p, x * 2 / lm, 100, epochs)
    loop_row = time.perf_counter() - t
    t = time.perf_counter()
    R.stability_map(d.X, d.y, R.VARIANTS, xs, "fraction", np.array([100]), epochs, "gd")
    vec_row = time.perf_counter() - t
    print(
        f"full-batch row only (160 cells): one run per cell {loop_row:.3f} s vs vectorized {vec_row:.3f} s "
        f"({loop_row / vec_row:.0f}x)"
    )
    t = time.perf_counter()
    for p, lm in zip(problems, lam, strict=True):
        for b in bss:
            if p.variant == "batchnorm" and b < 2:
                continue
            for x in xs:
                R.run(p, x * 2 / lm, int(b), epochs)
    loop_all = time.perf_counter() - t
    print(
        f"whole map, gradient descent: one run per cell {loop_all:.2f} s (compare with the vectorized line above)"
    )


if __name__ == "__main__":
    main()
