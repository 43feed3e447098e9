"""Loss landscape on a 400 x 400 (w1, w2) grid: closed form from sufficient statistics vs direct.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_loss_grid

Compares ``bn_core.regression.loss_grid`` (the quadratic form from D^T D, D^T y, y^T y: a few
vectorized array operations on the grid, independent of n) against
``loss_grid_direct`` (residuals D theta - y for every grid point, i.e. touching all n samples
160 000 times, chunked to bound memory), on the seed data (seed 42, n 100, noise 0.1) and on
n = 1000. Prints the median times, the ratio and the largest relative difference.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as a file, not only with -m

from bn_core import regression as R
from bn_core.data import make_regression
from ui.valley import GRID


def _median_time(fn, args: tuple, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    g = 400
    print(
        f"Loss grid {g} x {g} = {g * g} points; median wall time (this machine, load average "
        f"{np.round(__import__('os').getloadavg(), 2).tolist()})"
    )
    print(f"{'data':<28}{'closed form':>14}{'direct':>14}{'ratio':>10}{'max rel diff':>15}")
    for n in (100, 1000):
        d = make_regression(seed=42, n=n, noise=0.1)
        for variant in ("raw", "standardized"):
            p = R.make_problem(d.X, d.y, variant)
            star = R.least_squares(p.design, p.y)
            w1 = np.linspace(star[0] - 3, star[0] + 3, g)
            w2 = np.linspace(star[1] - 3, star[1] + 3, g)
            fixed = star[2:]
            stats = p.stats  # computed once per data set (cached by the page)
            closed = _median_time(R.loss_grid, (stats, w1, w2, fixed), 30)
            direct = _median_time(R.loss_grid_direct, (p.design, p.y, w1, w2, fixed), 3)
            Z, Zd = (
                R.loss_grid(stats, w1, w2, fixed),
                R.loss_grid_direct(p.design, p.y, w1, w2, fixed),
            )
            rel = float(np.max(np.abs(Z - Zd) / np.abs(Zd)))
            print(
                f"{f'n={n}, {variant}':<28}{closed * 1e3:>11.2f} ms{direct * 1e3:>11.1f} ms"
                f"{direct / closed:>9.0f}x{rel:>15.1e}"
            )
    print(f"Target: a 400 x 400 grid in a few milliseconds (closed form); the page draws {GRID} x {GRID} "
          "(ui.valley.GRID).")


if __name__ == "__main__":
    main()
