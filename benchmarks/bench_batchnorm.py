"""BatchNorm1d forward + backward throughput (training mode) at three batch shapes.

For each shape (n_samples, n_features) in (64, 100), (256, 512), (1024, 256) and each dtype
(float32, float64) this prints the time of one training-mode forward plus one backward with a
random upstream gradient (microseconds per call, best of several repeats) and the
throughput in rows per second, compared against:

* a textbook NumPy implementation written the usual way (``x.mean``, ``x.var``, x_hat
  materialized, the three-term backward with ``np.sum``/``np.mean``), which is what the
  core's fused version should beat;
* the memory-bandwidth floor: time to read the input and upstream gradient and write the
  output and input gradient once (``np.copyto`` of the same number of bytes), the best any
  implementation could approach;
* ``torch.nn.BatchNorm1d`` on CPU (autograd forward + backward, one thread), only if PyTorch
  happens to be installed; it is never a dependency.

Run from the repository root:
    .venv/bin/python -m benchmarks.bench_batchnorm [--repeats 7]
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as a file, not only with -m

from bn_core.layers import BatchNorm1d

SHAPES = ((64, 100), (256, 512), (1024, 256))


def textbook_forward_backward(x, gamma, beta, g, eps=1e-5):
    """The common NumPy write-up (e.g. course notes): clear, with many temporaries."""
    mu = np.mean(x, axis=0)
    var = np.var(x, axis=0)
    x_hat = (x - mu) / np.sqrt(var + eps)
    y = gamma * x_hat + beta
    n = x.shape[0]
    dgamma = np.sum(g * x_hat, axis=0)
    dbeta = np.sum(g, axis=0)
    dx_hat = g * gamma
    dx = (
        (1.0 / n)
        / np.sqrt(var + eps)
        * (n * dx_hat - np.sum(dx_hat, axis=0) - x_hat * np.sum(dx_hat * x_hat, axis=0))
    )
    return y, dx, dgamma, dbeta


def best_times(fns: list, repeats: int) -> list[float]:
    """Best seconds per call of each function, timed in interleaved rounds.

    The number of calls per round is calibrated to ~0.03 s for each function; the rounds
    alternate between the functions so that a burst of load from other processes on a
    shared machine hits all of them alike, and the minimum over rounds is kept.
    """
    numbers = []
    for fn in fns:
        number = 1
        while timeit.timeit(fn, number=number) < 0.03:
            number *= 2
        numbers.append(number)
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, (fn, number) in enumerate(zip(fns, numbers, strict=True)):
            best[i] = min(best[i], timeit.timeit(fn, number=number) / number)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    try:
        import torch  # type: ignore[import-not-found]

        torch.set_num_threads(1)
    except ImportError:
        torch = None
    print(
        "BatchNorm1d training-mode forward + backward, one BLAS thread, best of "
        f"{args.repeats} repeats; PyTorch reference: {'yes' if torch else 'not installed'}\n"
    )
    cols = [
        "shape",
        "dtype",
        "bn_core us",
        "Mrows/s",
        "textbook us",
        "speed-up",
        "copy floor us",
        "vs floor",
        "torch us",
    ]
    print(" ".join(f"{c:>13s}" for c in cols))
    rng = np.random.default_rng(0)
    with threadpool_limits(1, user_api="blas"):
        for n, c in SHAPES:
            for dtype in (np.float32, np.float64):
                x = (3.0 + 2.0 * rng.normal(size=(n, c))).astype(dtype)
                g = rng.normal(size=(n, c)).astype(dtype)
                layer = BatchNorm1d(c, dtype=dtype)
                gamma, beta = layer.params["gamma"], layer.params["beta"]

                def ours(layer=layer, x=x, g=g):
                    layer.forward(x, training=True)
                    return layer.backward(g)

                # same answer as the textbook version (a benchmark of a wrong layer is useless)
                ref = textbook_forward_backward(
                    x.astype(np.float64), 1.0, 0.0, g.astype(np.float64)
                )
                got = ours()
                tol = 1e-3 if dtype == np.float32 else 1e-9
                assert np.allclose(got, ref[1], rtol=tol, atol=tol), "gradient mismatch"

                src = np.concatenate([x, g]).ravel()
                dst = np.empty_like(src)
                t_ours, t_book, t_floor = best_times(
                    [
                        ours,
                        lambda x=x, g=g, ga=gamma, be=beta: textbook_forward_backward(x, ga, be, g),
                        lambda s=src, d=dst: np.copyto(d, s),
                    ],
                    args.repeats,
                )
                t_torch = float("nan")
                if torch is not None:
                    tdt = torch.float32 if dtype == np.float32 else torch.float64
                    bn = torch.nn.BatchNorm1d(c).to(tdt)
                    xt = torch.tensor(x, requires_grad=True)
                    gt = torch.tensor(g)

                    def theirs(bn=bn, xt=xt, gt=gt):
                        xt.grad = None
                        bn(xt).backward(gt)

                    t_torch = best_times([theirs], args.repeats)[0] * 1e6
                print(
                    f"{str((n, c)):>13s} {np.dtype(dtype).name:>13s} {t_ours * 1e6:13.1f} "
                    f"{n / t_ours / 1e6:13.2f} {t_book * 1e6:13.1f} {t_book / t_ours:12.2f}x "
                    f"{t_floor * 1e6:13.1f} {t_ours / t_floor:12.1f}x {t_torch:13.1f}"
                )
    print(
        "\nspeed-up = textbook time / bn_core time (> 1: the fused core is faster);"
        "\nvs floor = bn_core time / time to copy the same bytes once (1.0 is the ideal)."
    )


if __name__ == "__main__":
    main()
