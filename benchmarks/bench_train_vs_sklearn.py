"""Training time per epoch on digits: bn_core's MLP against scikit-learn's MLPClassifier.

Same architecture and work on both sides: 3 hidden layers of 100 logistic (sigmoid) units,
10 softmax outputs, plain SGD (no momentum, no Nesterov, no L2 penalty), mini-batches of 60,
learning rate 0.1, the same number of epochs, no early stopping and no tolerance-based stop,
no evaluation during training.

Differences that are left as they are (and printed): scikit-learn keeps the incomplete last
batch of an epoch (1347 = 22 x 60 + 27: 23 updates per epoch) while bn_core drops it (22
updates per epoch), so the time is also reported per 1000 training samples processed.

Chapter 3's default run against its 2 s budget is timed by ``bench_chapter3_default.py``.

Timings use the best of ``--repeats`` runs (the minimum is the least disturbed by other
processes on a shared machine); wall-clock and CPU time are both printed. scikit-learn is
timed with its default BLAS threads and with one BLAS thread (bn_core's trainer always uses
one), and compared with the faster of the two.

Run from the repository root:
    .venv/bin/python -m benchmarks.bench_train_vs_sklearn [--epochs 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as a file, not only with -m

from bn_core.train import TrainConfig, digits, train


def time_ours(epochs: int, batch: int, dtype: str, norm: str = "none") -> dict:
    data = digits(dtype)
    n_train = len(data.X_train)
    per_epoch = n_train // batch
    steps = epochs * per_epoch
    cfg = TrainConfig(
        depth=3,
        width=100,
        activation="sigmoid",
        norm=norm,
        init_scale=0.1,
        lr=0.1,
        batch_size=batch,
        steps=steps,
        optimizer="sgd",
        eval_every=steps,
        dtype=dtype,
    )
    t0, c0 = time.perf_counter(), time.process_time()
    result = train(cfg, data=data)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    step_sum = float(result.history["step_time"].sum())
    return {
        "wall": wall,
        "cpu": cpu,
        "steps_only": step_sum,
        "epochs": epochs,
        "updates_per_epoch": per_epoch,
        "samples": steps * batch,
        "test_acc": float(result.history["test_acc"][-1]),
    }


def time_sklearn(epochs: int, batch: int, dtype: str, one_thread: bool) -> dict:
    data = digits(dtype)
    clf = MLPClassifier(
        hidden_layer_sizes=(100, 100, 100),
        activation="logistic",
        solver="sgd",
        learning_rate="constant",
        learning_rate_init=0.1,
        momentum=0.0,
        nesterovs_momentum=False,
        alpha=0.0,
        batch_size=batch,
        max_iter=epochs,
        shuffle=True,
        tol=0.0,
        n_iter_no_change=epochs + 1,
        early_stopping=False,
        random_state=0,
    )
    ctx = threadpool_limits(1, user_api="blas") if one_thread else threadpool_limits(None)
    with ctx, warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0, c0 = time.perf_counter(), time.process_time()
        clf.fit(data.X_train, data.y_train)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n_train = len(data.X_train)
    return {
        "wall": wall,
        "cpu": cpu,
        "epochs": clf.n_iter_,
        "updates_per_epoch": -(-n_train // batch),
        "samples": clf.n_iter_ * n_train,
        "test_acc": float(clf.score(data.X_test, data.y_test)),
    }


def best(runs: list[dict], key: str = "wall") -> dict:
    return min(runs, key=lambda r: r[key])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=60)
    args = parser.parse_args()
    digits("float64"), digits("float32")  # load once, outside the timings
    print(
        f"digits: {len(digits().X_train)} training samples; {args.epochs} epochs, batch "
        f"{args.batch}, 3 x 100 logistic, SGD lr 0.1; best of {args.repeats} runs\n"
    )
    header = f"{'implementation':44s} {'s/epoch':>9s} {'ms/1k samples':>14s} {'cpu s/epoch':>12s} {'test acc':>9s}"
    print(header)
    print("-" * len(header))

    def row(name: str, r: dict, wall: float) -> float:
        per_epoch = wall / r["epochs"]
        per_k = 1000 * wall / r["samples"] * 1000
        print(
            f"{name:44s} {per_epoch:9.4f} {per_k:14.3f} {r['cpu'] / r['epochs']:12.4f} {r['test_acc']:9.3f}"
        )
        return per_epoch

    results = {}
    for dtype in ("float64", "float32"):
        ours = [time_ours(args.epochs, args.batch, dtype) for _ in range(args.repeats)]
        b = best(ours)
        results[f"ours {dtype}"] = (
            row(f"bn_core {dtype} (train() incl. 2 evaluations)", b, b["wall"]),
            b,
        )
        bs = best(ours, "steps_only")
        row(f"bn_core {dtype} (sum of step_time only)", bs, bs["steps_only"])
    sk = {}
    for one in (False, True):
        runs = [time_sklearn(args.epochs, args.batch, "float64", one) for _ in range(args.repeats)]
        b = best(runs)
        label = "1 BLAS thread" if one else "default BLAS threads"
        sk[label] = (row(f"sklearn MLPClassifier float64 ({label})", b, b["wall"]), b)
    sk_best_label = min(sk, key=lambda k: sk[k][0])
    sk_epoch, sk_run = sk[sk_best_label]
    print()
    print(
        f"updates per epoch: bn_core {results['ours float64'][1]['updates_per_epoch']} "
        f"(drops the incomplete batch), sklearn {sk_run['updates_per_epoch']} (keeps it)"
    )
    for name, (epoch, r) in results.items():
        ratio_epoch = epoch / sk_epoch
        ratio_sample = (epoch / (r["samples"] / r["epochs"])) / (
            sk_epoch / (sk_run["samples"] / sk_run["epochs"])
        )
        cpu_ratio = (r["cpu"] / r["epochs"]) / (sk_run["cpu"] / sk_run["epochs"])
        print(
            f"ratio {name} / sklearn ({sk_best_label}): wall per epoch {ratio_epoch:.2f}, "
            f"wall per sample {ratio_sample:.2f}, CPU per epoch {cpu_ratio:.2f}   (target <= 1.0)"
        )


if __name__ == "__main__":
    main()
