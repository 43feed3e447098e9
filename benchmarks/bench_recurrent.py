"""Chapter 5's speed: the page's default comparison, and one BPTT step against PyTorch.

Run: ``.venv/bin/python -m benchmarks.bench_recurrent [--reps 300]``

1. The page's default comparison: the six runs the chapter-5 page trains with its defaults
   (sequential digits and the loudest-channel task, each for none / BN per step / LN; 400 steps,
   batch 32, 64 hidden units, T = 8), timed end to end with :func:`bn_core.recurrent.train`
   (evaluations included). The issue's budget: <= 5 s on 2 cores.
2. One training step (forward, cross-entropy, BPTT, SGD-momentum update) of the default network
   (batch 32, T = 8, 8 inputs, 64 hidden, 10 classes), median over ``--reps`` steps, one thread,
   for each norm, against PyTorch on one thread (``torch.set_num_threads(1)``): ``nn.RNN`` (tanh)
   + ``nn.Linear`` for "none"; for "bn" and "ln", whose normalization sits inside the recurrence
   where ``nn.RNN`` has no hook, the same cell written as a Python loop over time with
   ``nn.Linear`` and one ``nn.BatchNorm1d`` per step / one ``nn.LayerNorm``. The issue's budget:
   within 2x of PyTorch. PyTorch is optional: without it the comparison is skipped and said so.

Prints the load average (``os.getloadavg()``) before and after: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as a file, not only with -m

from bn_core import recurrent as rec
from bn_core.layers import softmax_cross_entropy
from bn_core.network import Momentum
from bn_core.train import single_blas_thread

N, T, N_IN, H, N_OUT = 32, 8, 8, 64, 10


def load() -> str:
    a, b, c = os.getloadavg()
    return f"load average {a:.2f} {b:.2f} {c:.2f} ({os.cpu_count()} cores)"


def page_default() -> tuple[float, dict, float]:
    """Wall time [s] of the page's six default runs, per run, and of loading the digits once."""
    from ui.sequence import Settings  # the page's own defaults -> the same configs

    settings = Settings()
    per = {}
    t0 = time.perf_counter()
    rec.sequential_digits()  # scikit-learn's bundled file, read once per process (then cached)
    data_s = time.perf_counter() - t0
    start = time.perf_counter()
    for task in ("digits", "length"):
        for norm in rec.NORMS:
            t0 = time.perf_counter()
            rec.train(settings.config(task, norm))
            per[(task, norm)] = time.perf_counter() - t0
    return time.perf_counter() - start, per, data_s


def numpy_step_ms(norm: str, reps: int) -> float:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, T, N_IN))
    y = rng.integers(0, N_OUT, size=N)
    model = rec.RNNClassifier(N_IN, H, N_OUT, norm=norm, seed=0)
    flat = rec._Flat(model)
    opt = Momentum(0.05, momentum=0.9)
    times = []
    with single_blas_thread(), np.errstate(all="ignore"):
        for i in range(reps + 20):
            t0 = time.perf_counter()
            logits = model.forward(x, training=True)
            _, g = softmax_cross_entropy(logits, y)
            model.backward(g)
            opt.step([flat])
            if i >= 20:
                times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def torch_step_ms(norm: str, reps: int) -> float:
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(N, T, N_IN, dtype=torch.float64)
    y = torch.randint(0, N_OUT, (N,))
    head = nn.Linear(H, N_OUT).double()
    if norm == "none":
        rnn = nn.RNN(N_IN, H, nonlinearity="tanh", batch_first=True).double()
        modules = [rnn, head]

        def forward():
            _, h = rnn(x)
            return head(h[0])
    else:
        wx = nn.Linear(N_IN, H, bias=False).double()
        wh = nn.Linear(H, H).double()
        norms = ([nn.BatchNorm1d(H).double() for _ in range(T)] if norm == "bn"
                 else [nn.LayerNorm(H).double()])
        modules = [wx, wh, head, *norms]

        def forward():
            xw = wx(x)
            h = torch.zeros(N, H, dtype=torch.float64)
            for t in range(T):
                a = xw[:, t] + nn.functional.linear(h, wh.weight)
                h = torch.tanh(norms[t if norm == "bn" else 0](a) + wh.bias)
            return head(h)

    params = [p for m in modules for p in m.parameters()]
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for i in range(reps + 20):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(forward(), y)
        loss.backward()
        opt.step()
        if i >= 20:
            times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=300)
    args = ap.parse_args()
    print(f"bench_recurrent  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  {load()}")
    total, per, data_s = page_default()
    print("\n1. The chapter-5 page's default comparison (6 runs, 400 steps each, evaluations included)")
    for (task, norm), sec in per.items():
        print(f"   {task:7s} {norm:5s} {sec:6.2f} s")
    print(f"   total   {total:6.2f} s   (budget 5 s: {'within' if total <= 5 else 'OVER'}); "
          f"loading the digits once per process: {data_s:.2f} s more")
    print(f"\n2. One training step, batch {N}, T = {T}, {N_IN} inputs, {H} hidden, {N_OUT} classes, "
          f"float64, one thread, median of {args.reps}")
    try:
        import torch

        have_torch = True
        print(f"   reference: PyTorch {torch.__version__} (nn.RNN for none; a loop over time for bn/ln)")
    except ImportError:
        have_torch = False
        print("   PyTorch is not installed: the comparison is skipped (install torch to run it)")
    for norm in rec.NORMS:
        ours = numpy_step_ms(norm, args.reps)
        line = f"   {norm:5s} NumPy {ours:6.3f} ms"
        if have_torch:
            ref = torch_step_ms(norm, args.reps)
            ratio = ours / ref
            line += (f"   PyTorch {ref:6.3f} ms   ratio {ratio:4.2f}x "
                     f"({'within' if ratio <= 2 else 'OVER'} the 2x budget)")
        print(line)
    print(f"\n{load()}")


if __name__ == "__main__":
    main()
