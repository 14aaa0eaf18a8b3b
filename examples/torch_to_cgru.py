"""Train a GRU in PyTorch, convert it to cgru, save it, and serve it with cgru alone.

    python examples/torch_to_cgru.py [--out model.npz]     (needs PyTorch: pip install torch)

The PyTorch model is a 2-layer nn.GRU with an nn.Linear head, trained to echo its input three
steps late (y[t] = x[t - 3]). cgru.from_torch converts the GRU; the Linear head becomes a Dense
layer (its weight transposed). The converted model is saved to one .npz file, and a separate
process, which imports cgru and NumPy but never torch, loads it and computes the predictions
(this script run with --serve). They equal PyTorch's to float32 rounding.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

import cgru

DELAY, STEPS = 3, 40


def make_batch(n, rng):
    x = rng.normal(size=(n, STEPS, 1)).astype(np.float32)
    y = np.zeros_like(x)
    y[:, DELAY:] = x[:, :-DELAY]
    return x, y


def train_in_torch(steps, rng):
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)  # a model this small trains fastest on one thread

    class Echo(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(1, 32, num_layers=2, batch_first=True)
            self.head = torch.nn.Linear(32, 1)

        def forward(self, x):
            return self.head(self.gru(x)[0])

    net = Echo()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    for step in range(1, steps + 1):
        x, y = (torch.from_numpy(a) for a in make_batch(64, rng))
        loss = torch.nn.functional.mse_loss(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == steps:
            print(f"torch step {step}: loss {loss.item():.4f}")
    return net.eval()


def serve(model_path, inputs_path, outputs_path):
    """The serving process: cgru and NumPy only."""
    model = cgru.load_model(model_path)
    with np.load(inputs_path) as f:
        x = f["x"]
    np.save(outputs_path, model.predict(x))
    print(f"server: predicted {x.shape[0]} sequences; torch imported: {'torch' in sys.modules}")
    if "torch" in sys.modules:
        sys.exit("the serving process imported torch")


def main():
    parser = argparse.ArgumentParser(description="PyTorch nn.GRU -> cgru -> served without torch.")
    parser.add_argument("--out", help="where to save the converted model (default: a temporary file)")
    parser.add_argument("--quick", action="store_true", help="fewer training steps (for smoke tests)")
    parser.add_argument("--serve", nargs=3, metavar=("MODEL", "INPUTS", "OUTPUTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return

    try:
        import torch
    except ImportError:
        print("PyTorch is not installed (pip install torch, or pip install \".[torch]\" in a cgru "
              "checkout): this example trains an nn.GRU in PyTorch first, so it stops here")
        return

    rng = np.random.default_rng(5)
    net = train_in_torch(100 if args.quick else 300, rng)
    x_test, y_test = make_batch(256, rng)
    with torch.no_grad():
        torch_pred = net(torch.from_numpy(x_test)).numpy()
    print(f"PyTorch test MSE {np.mean((torch_pred - y_test) ** 2):.4f} "
          f"(predicting zeros: {np.mean(y_test ** 2):.4f})")

    model = cgru.from_torch(net.gru)  # the GRU layers, return_sequences=True
    model.add(cgru.Dense(1))
    model.layers[-1].set_weights([net.head.weight.detach().numpy().T, net.head.bias.detach().numpy()])
    model.summary()
    print(f"cgru vs PyTorch, max difference: {np.max(np.abs(model.predict(x_test) - torch_pred)):.1e}")

    with tempfile.TemporaryDirectory() as tmp:
        path = args.out or os.path.join(tmp, "echo.npz")
        model.save(path)
        np.savez(os.path.join(tmp, "inputs.npz"), x=x_test)
        outputs = os.path.join(tmp, "outputs.npy")
        subprocess.run([sys.executable, __file__, "--serve", path, os.path.join(tmp, "inputs.npz"), outputs],
                       check=True)
        served = np.load(outputs)
    difference = np.max(np.abs(served - torch_pred))
    print(f"saved model served without torch: max difference from PyTorch {difference:.1e}")
    np.testing.assert_allclose(served, torch_pred, rtol=1e-4, atol=1e-5)


if __name__ == "__main__":
    main()
