"""Compare bn_core's normalization layers with PyTorch's, where PyTorch is installed.

PyTorch is an optional reference here only; it is never a dependency of the app or its
tests. Prints, per layer, the largest absolute difference of outputs, input gradients,
parameter gradients and (for BatchNorm1d) running statistics, over several training steps
with random inputs and RANDOM upstream gradients, then one evaluation-mode pass.

    python benchmarks/torch_parity.py      # exits 0 and says so when torch is missing
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

try:
    import torch
except ImportError:
    print("PyTorch is not installed: nothing to compare (it is an optional reference only).")
    sys.exit(0)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runs as a file, not only with -m

from bn_core.layers import BatchNorm1d, GroupNorm, LayerNorm

torch.set_default_dtype(torch.float64)


def compare(name, ours, ref, shape, steps=5, eval_pass=True, seed=0):
    rng = np.random.default_rng(seed)
    worst = {"output": 0.0, "grad_input": 0.0, "grad_gamma": 0.0, "grad_beta": 0.0}
    for _ in range(steps):
        x = rng.normal(loc=3.0, scale=2.5, size=shape)
        g = rng.normal(size=shape)
        y = ours.forward(x, training=True)
        dx = ours.backward(g)
        xt = torch.tensor(x, requires_grad=True)
        ref.train()
        yt = ref(xt)
        yt.backward(torch.tensor(g))
        worst["output"] = max(worst["output"], np.abs(y - yt.detach().numpy()).max())
        worst["grad_input"] = max(worst["grad_input"], np.abs(dx - xt.grad.numpy()).max())
        worst["grad_gamma"] = max(worst["grad_gamma"], np.abs(ours.grads["gamma"] - ref.weight.grad.numpy()).max())
        worst["grad_beta"] = max(worst["grad_beta"], np.abs(ours.grads["beta"] - ref.bias.grad.numpy()).max())
        ref.zero_grad()
    if hasattr(ours, "running_mean"):
        worst["running_mean"] = np.abs(ours.running_mean - ref.running_mean.numpy()).max()
        worst["running_var"] = np.abs(ours.running_var - ref.running_var.numpy()).max()
    if eval_pass:
        x = rng.normal(loc=3.0, scale=2.5, size=shape)
        ref.eval()
        with torch.no_grad():
            worst["eval_output"] = np.abs(ours.forward(x, training=False) - ref(torch.tensor(x)).numpy()).max()
    print(f"{name:<34}" + "  ".join(f"{k}={v:.1e}" for k, v in worst.items()))
    return max(worst.values())


def main():
    print(f"PyTorch {torch.__version__}; float64; largest absolute difference, ours vs torch.nn:")
    worst = max(
        compare("BatchNorm1d(16, momentum=0.1)", BatchNorm1d(16), torch.nn.BatchNorm1d(16), (32, 16)),
        compare("BatchNorm1d(8, momentum=0.3), n=2", BatchNorm1d(8, momentum=0.3),
                torch.nn.BatchNorm1d(8, momentum=0.3), (2, 8)),
        compare("LayerNorm(16)", LayerNorm(16), torch.nn.LayerNorm(16), (32, 16)),
        compare("GroupNorm(4, 16)", GroupNorm(4, 16), torch.nn.GroupNorm(4, 16), (32, 16)),
        compare("GroupNorm(1, 16) (= LayerNorm)", GroupNorm(1, 16), torch.nn.GroupNorm(1, 16), (32, 16)),
    )
    print(f"worst difference over all layers and quantities: {worst:.1e} (float64 round-off is ~1e-15)")


if __name__ == "__main__":
    main()
