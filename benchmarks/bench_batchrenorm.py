"""BatchRenorm1d forward + backward time against BatchNorm1d's (issue 7: within 1.3x).

For the shape (256, 100) (and two more for context) and both dtypes this times one
training-mode forward plus one backward with a random upstream gradient, for
``BatchNorm1d`` and ``BatchRenorm1d`` (default r_max=3, d_max=5, running statistics that
are not the initial 0/1, so r and d are generic), in interleaved rounds (best of
``--repeats``), one BLAS thread. It prints microseconds per call, the ratio BRN / BN (the
target is <= 1.3 at (256, 100)) and ``os.getloadavg()`` before and after, because the
machine is shared.

Run from the repository root:
    .venv/bin/python -m benchmarks.bench_batchrenorm [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as a file, not only with -m

from benchmarks.bench_batchnorm import best_times
from bn_core.layers import BatchNorm1d, BatchRenorm1d

SHAPES = ((256, 100), (64, 64), (1024, 256))
TARGET = 1.3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    rng = np.random.default_rng(0)
    print(f"{'shape':>12} {'dtype':>8} {'BN us':>9} {'BRN us':>9} {'BRN/BN':>7}")
    with threadpool_limits(limits=1, user_api="blas"):
        for shape in SHAPES:
            for dtype in (np.float32, np.float64):
                x = rng.normal(loc=0.3, scale=1.5, size=shape).astype(dtype)
                g = rng.normal(size=shape).astype(dtype)
                bn, brn = BatchNorm1d(shape[1], dtype=dtype), BatchRenorm1d(shape[1], dtype=dtype)
                for layer in (bn, brn):
                    layer.running_mean[...] = rng.normal(scale=0.5, size=shape[1])
                    layer.running_var[...] = rng.uniform(0.5, 4.0, size=shape[1])

                def run_bn(layer=bn, x=x, g=g):
                    layer.forward(x, training=True)
                    layer.backward(g)

                def run_brn(layer=brn, x=x, g=g):
                    layer.forward(x, training=True)
                    layer.backward(g)

                t_bn, t_brn = best_times([run_bn, run_brn], args.repeats)
                name = np.dtype(dtype).name
                print(
                    f"{str(shape):>12} {name:>8} {t_bn * 1e6:9.1f} {t_brn * 1e6:9.1f} "
                    f"{t_brn / t_bn:7.2f}"
                )
    print(f"target: BRN/BN <= {TARGET} at (256, 100) (issue 7)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
