"""Chapter 4's batch-size sweep: wall time against the 20 s target, and its accuracies.

Runs :func:`bn_core.experiments.batch_size_sweep` at the page's defaults (5 norms x 7 batch
sizes 2..128 x 2 seeds, 8 epochs each, lr = 0.05 * batch / 32, 2 x 64 ReLU, float32), one
batch size at a time so that the time of each is printed, then prints:

* the total against the issue's target (<= 20 s on 2 cores);
* the same work trained one configuration after another with ``bn_core.train.train`` for
  the two smallest batch sizes (what stacking with ``train_many`` saves), unless
  ``--quick``;
* the mean test accuracy (evaluation mode) per norm and batch size beside the issue's
  reference, measured with an independent PyTorch implementation (batch 2: none 0.97, BN
  about 0.5, LN 0.97, GN 0.97; batch 32: all about 0.97);
* ``os.getloadavg()`` before and after (the machine is shared).

    .venv/bin/python -m benchmarks.bench_curse_sweep [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as a file, not only with -m

from bn_core.experiments import BATCH_SIZES, CH4_NORMS, NORM_LABELS, batch_size_sweep
from bn_core.stacked import train_many
from bn_core.train import TrainConfig, digits, steps_per_epoch, train

TARGET_S = 20.0
REFERENCE = {2: {"none": 0.97, "bn_before": 0.5, "ln": 0.97, "gn": 0.97},
             32: {"none": 0.97, "bn_before": 0.97, "brn": 0.97, "ln": 0.97, "gn": 0.97}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the one-by-one comparison")
    args = parser.parse_args()
    digits("float32")  # load the data outside the timed region (the page has it cached)
    print(f"load average before: {os.getloadavg()}")
    chunks, times = [], []
    t_all = time.perf_counter()
    for b in BATCH_SIZES:
        t0 = time.perf_counter()
        chunks.append(batch_size_sweep(batch_sizes=(b,)))
        times.append(time.perf_counter() - t0)
        print(f"batch {b:>3}: {int(chunks[-1]['steps'][0]):>5} steps x 10 networks "
              f"in {times[-1]:5.2f} s")
    total = time.perf_counter() - t_all
    print(f"full sweep (5 norms x {len(BATCH_SIZES)} batch sizes x 2 seeds): {total:.1f} s "
          f"(target <= {TARGET_S:.0f} s on 2 cores) -> {'OK' if total <= TARGET_S else 'SLOW'}")
    t0 = time.perf_counter()
    whole = batch_size_sweep()
    print(f"the same as one call: {time.perf_counter() - t0:.1f} s")
    del whole

    if not args.quick:
        for b in BATCH_SIZES[:2]:
            steps = 8 * steps_per_epoch(b)
            base = TrainConfig(depth=2, width=64, activation="relu", init_scale=0.1,
                               optimizer="momentum", momentum=0.9, lr=0.05 * b / 32,
                               batch_size=b, steps=steps, eval_every=steps)
            cfgs = [dataclasses.replace(base, norm=n, seed=s) for n in CH4_NORMS for s in (0, 1)]
            t0 = time.perf_counter()
            for cfg in cfgs:
                train(cfg)
            one = time.perf_counter() - t0
            t0 = time.perf_counter()
            train_many(cfgs)
            many = time.perf_counter() - t0
            print(f"batch {b}: 10 runs one by one with train(): {one:.2f} s; stacked with "
                  f"train_many(): {many:.2f} s ({one / many:.1f}x)")

    print("mean test accuracy over seeds 0 and 1 (evaluation mode); [reference: independent "
          "PyTorch run quoted in issue 7]")
    header = " ".join(f"{b:>6}" for b in BATCH_SIZES)
    print(f"{'':>28} {header}")
    for n in CH4_NORMS:
        accs = [float(np.mean(c[f"{n}/test_acc"])) for c in chunks]
        row = " ".join(f"{a:6.3f}" for a in accs)
        refs = ", ".join(f"batch {b}: {REFERENCE[b][n]}" for b in REFERENCE if n in REFERENCE[b])
        print(f"{NORM_LABELS[n]:>28} {row}   [{refs}]")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
