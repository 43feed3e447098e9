"""Chapter 4 against PyTorch (optional reference): whole training runs, step by step.

For each norm (none, BatchNorm, Batch Renorm, LayerNorm, GroupNorm) and each batch order
(shuffled, class-sorted) this trains the issue's reference network (2 x 64 ReLU, N(0, 0.1^2)
weights, SGD momentum 0.9, lr 0.05 * batch / 32) twice from the *same* initial weights and
the *same* mini-batches: once with ``bn_core.train.train`` and once with a PyTorch model
(``torch.nn`` Linear/BatchNorm1d/LayerNorm/GroupNorm, Batch Renorm written with autograd and
``detach()`` on r and d, ``torch.optim.SGD(momentum=0.9)``), float64. It prints the largest
relative difference of the mini-batch losses and the two final test accuracies (evaluation
mode), so a difference between our numbers and a published/independent run can be told
apart from a difference in the implementation.

Then, for context, the issue's independent-PyTorch setting with PyTorch's *own* draws
(``torch.manual_seed``, ``torch.randperm`` batches, same network): test accuracy at
batch 2 and 32 and with class-sorted batches of 32 for 6 epochs.

    .venv/bin/python -m benchmarks.torch_curse_parity     # exits 0 if torch is missing
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

try:
    import torch
except ImportError:
    print("PyTorch is not installed: nothing to compare (it is an optional reference only).")
    sys.exit(0)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as a file, not only with -m

from bn_core.experiments import CH4_NORMS, _ch4_base, scaled_lr
from bn_core.train import batch_schedule, digits, make_model, steps_per_epoch, train

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)


class TorchBRN(torch.nn.Module):
    """Batch Renorm (Ioffe 2017) with autograd; r and d detached (stop-gradient)."""

    def __init__(self, c, r_max, d_max, momentum=0.1, eps=1e-5):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(c))
        self.bias = torch.nn.Parameter(torch.zeros(c))
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))
        self.r_max, self.d_max, self.m, self.eps = r_max, d_max, momentum, eps

    def forward(self, x):
        if not self.training:
            xh = (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)
            return xh * self.weight + self.bias
        mu = x.mean(0)
        var = x.var(0, unbiased=False)
        sb = torch.sqrt(var + self.eps)
        s = torch.sqrt(self.running_var + self.eps)
        r = torch.clamp(sb / s, 1 / self.r_max, self.r_max).detach()
        d = torch.clamp((mu - self.running_mean) / s, -self.d_max, self.d_max).detach()
        with torch.no_grad():
            n = x.shape[0]
            self.running_mean.mul_(1 - self.m).add_(self.m * mu)
            self.running_var.mul_(1 - self.m).add_(self.m * var * n / (n - 1))
        return ((x - mu) / sb * r + d) * self.weight + self.bias


def torch_model(norm, width=64, depth=2, n_in=64, n_out=10, groups=4, r_max=3.0, d_max=5.0):
    layers, fan = [], n_in
    for _ in range(depth):
        layers.append(torch.nn.Linear(fan, width, bias=norm not in ("bn_before", "brn")))
        if norm == "bn_before":
            layers.append(torch.nn.BatchNorm1d(width))
        elif norm == "brn":
            layers.append(TorchBRN(width, r_max, d_max))
        elif norm == "ln":
            layers.append(torch.nn.LayerNorm(width))
        elif norm == "gn":
            layers.append(torch.nn.GroupNorm(groups, width))
        layers.append(torch.nn.ReLU())
        fan = width
    layers.append(torch.nn.Linear(fan, n_out))
    return torch.nn.Sequential(*layers)


def copy_weights(ours, theirs):
    lin_t = [m for m in theirs if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for a, b in zip(ours.linear_layers(), lin_t, strict=True):
            b.weight.copy_(torch.tensor(a.params["weight"].T))
            if b.bias is not None:
                b.bias.copy_(torch.tensor(a.params["bias"]))


def accuracy(model, X, y):
    model.eval()
    with torch.no_grad():
        return float((model(torch.tensor(X)).argmax(1).numpy() == y).mean())


def parity(norm, order, batch, epochs):
    data = digits("float64")
    steps = epochs * steps_per_epoch(batch, order, data)
    cfg = _ch4_base(norm=norm, batch_size=batch, steps=steps, eval_every=steps,
                    batch_order=order, lr=scaled_lr(batch), dtype="float64")
    ours = train(cfg)
    tm = torch_model(norm)
    copy_weights(make_model(cfg), tm)
    opt = torch.optim.SGD(tm.parameters(), lr=cfg.lr, momentum=0.9)
    schedule = batch_schedule(cfg, np.asarray(data.y_train))
    X, y = np.asarray(data.X_train), np.asarray(data.y_train)
    losses = []
    tm.train()
    for _ in range(steps):
        idx = next(schedule)
        loss = torch.nn.functional.cross_entropy(tm(torch.tensor(X[idx])), torch.tensor(y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    ref = np.array(losses)
    rel = np.max(np.abs(ours.history["batch_loss"] - ref) / np.maximum(np.abs(ref), 1e-12))
    acc_t = accuracy(tm, data.X_test, data.y_test)
    return rel, float(ours.history["test_acc"][-1]), acc_t, steps


def independent(norm, batch, epochs, order, seed):
    """PyTorch's own draws: torch.manual_seed init, torch.randperm batches (or class-pure)."""
    data = digits("float64")
    torch.manual_seed(seed)
    tm = torch_model(norm)
    with torch.no_grad():
        for m in tm:
            if isinstance(m, torch.nn.Linear):
                m.weight.normal_(0.0, 0.1)
                if m.bias is not None:
                    m.bias.zero_()
    opt = torch.optim.SGD(tm.parameters(), lr=scaled_lr(batch), momentum=0.9)
    X, y = torch.tensor(np.asarray(data.X_train)), torch.tensor(np.asarray(data.y_train))
    tm.train()
    for _ in range(epochs):
        if order == "shuffled":
            perm = torch.randperm(len(y))
            batches = [perm[i : i + batch] for i in range(0, len(y) - batch + 1, batch)]
        else:
            batches = []
            for c in range(10):
                idx = torch.nonzero(y == c).flatten()
                idx = idx[torch.randperm(len(idx))]
                batches += [idx[i : i + batch] for i in range(0, len(idx) - batch + 1, batch)]
            batches = [batches[i] for i in torch.randperm(len(batches))]
        for idx in batches:
            loss = torch.nn.functional.cross_entropy(tm(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return accuracy(tm, data.X_test, data.y_test)


def axes_parity() -> None:
    """bn_core.axes.normalize against torch.nn.functional on the real feature-map tensor."""
    from bn_core.axes import feature_maps, normalize

    x = feature_maps(n_images=8, seed=0)["x"]
    xt = torch.tensor(x)
    c = x.shape[1]
    ref = {
        "batch": lambda: torch.nn.functional.batch_norm(xt, None, None, training=True, eps=1e-5),
        "layer": lambda: torch.nn.functional.layer_norm(xt, xt.shape[1:], eps=1e-5),
        "instance": lambda: torch.nn.functional.instance_norm(xt, eps=1e-5),
        "group": lambda: torch.nn.functional.group_norm(xt, 3, eps=1e-5),
    }
    print(f"0) bn_core.axes.normalize vs torch.nn.functional on feature_maps (8, {c}, 8, 8)")
    for method, fn in ref.items():
        diff = np.abs(normalize(x, method, groups=3) - fn().numpy()).max()
        print(f"   {method:>8}: max abs difference {diff:.2e}")


def main() -> None:
    print(f"load average before: {os.getloadavg()}; torch {torch.__version__}")
    axes_parity()
    print("1) same initial weights and batches, bn_core.train vs PyTorch (float64)")
    print(f"{'norm':>10} {'order':>9} {'batch':>5} {'steps':>5} {'max rel diff of losses':>24} "
          f"{'acc ours':>8} {'acc torch':>9}")
    for order, batch, epochs in (("shuffled", 32, 8), ("shuffled", 4, 2), ("by_class", 32, 6)):
        for norm in CH4_NORMS:
            rel, a, b, steps = parity(norm, order, batch, epochs)
            print(f"{norm:>10} {order:>9} {batch:>5} {steps:>5} {rel:24.2e} {a:8.3f} {b:9.3f}")
    print("2) PyTorch with its own draws (the issue's independent setting), seeds 0 and 1")
    for label, batch, epochs, order in (("batch 2, 8 epochs", 2, 8, "shuffled"),
                                        ("batch 32, 8 epochs", 32, 8, "shuffled"),
                                        ("class-sorted 32, 6 epochs", 32, 6, "by_class")):
        accs = {n: [independent(n, batch, epochs, order, s) for s in (0, 1)] for n in CH4_NORMS}
        print(f"  {label}: " + ", ".join(f"{n} {np.round(v, 3).tolist()}" for n, v in accs.items()))
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
