"""The training benchmark of issue 13: the original Sorix's MNIST MLP, sorix eager and
compiled against PyTorch eager (CPU), time per epoch and final accuracy.

Sorix runs three ways: eager; `compile_step` (an explicit loss function, model and
optimizer); and "jit step", the usual-style loop body (zero_grad, forward, backward, step)
wrapped in `sorix.jit`.

    python -m benchmarks.training                      # 60,000 x 784 synthetic rows, 1 epoch
    python -m benchmarks.training --rows 10000 --epochs 2
    PYTHONPATH=/path/to/torch python -m benchmarks.training   # with PyTorch as the peer

Model: 784-128 (BatchNorm1d, ReLU), 64 (ReLU, Dropout 0.2), 10; RMSprop lr 1e-3; batch 128;
float32. Data: MNIST-shaped inputs (uniform in [0, 1)) labelled by a fixed random teacher
network, so accuracy means something; accuracy is measured on the training rows in eval mode.
BLAS pools are pinned to one thread (as benchmarks.run does); every implementation gets the
same data, the same initial weights and the same batch order. Nothing is asserted: it prints.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "BLIS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

BATCH, HIDDEN = 128, (128, 64)


def make_data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.random((rows, 784), dtype=np.float32)
    A = rng.standard_normal((784, 64)).astype(np.float32) / 8.0
    B = rng.standard_normal((64, 10)).astype(np.float32)
    y = np.argmax(np.tanh((X - 0.5) @ A) @ B, axis=1).astype(np.int64)
    return X, y


def sorix_model(seed: int):
    from sorix import nn

    np.random.seed(seed)
    return nn.Sequential(nn.Linear(784, 128), nn.BatchNorm1d(128), nn.ReLU(),
                         nn.Linear(128, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 10))


def batches(rows: int, epoch: int) -> list[np.ndarray]:
    order = np.random.default_rng(100 + epoch).permutation(rows)
    return [order[i:i + BATCH] for i in range(0, rows, BATCH)]


class SorixTrainer:
    """`how`: "eager", "compile_step" or "jit" (the eager step function under sorix.jit)."""

    def __init__(self, how: str, tier: str = "numpy") -> None:
        import sorix
        from sorix import nn, optim

        self.model = sorix_model(1)
        self.opt = optim.RMSprop(self.model.parameters(), lr=1e-3)
        self.criterion = nn.CrossEntropyLoss()
        self.step = self.eager_step
        if how == "compile_step":
            self.step = optim.compile_step(lambda xb, yb: self.criterion(self.model(xb), yb),
                                           self.model, self.opt, tier=tier)
        elif how == "jit":
            self.step = sorix.jit(self.eager_step, tier=tier)

    def eager_step(self, xb: Any, yb: Any) -> Any:
        self.opt.zero_grad()
        loss = self.criterion(self.model(xb), yb)
        loss.backward()
        self.opt.step()
        return loss

    def epoch(self, X: np.ndarray, y: np.ndarray, epoch: int) -> None:
        import sorix

        step = self.step
        for index in batches(len(X), epoch):
            step(sorix.tensor(X[index]), sorix.tensor(y[index]))

    def accuracy(self, X: np.ndarray, y: np.ndarray) -> float:
        import sorix

        self.model.eval()
        with sorix.no_grad():
            predicted = self.model(sorix.tensor(X)).numpy().argmax(axis=1)
        self.model.train()
        return float((predicted == y).mean())


class TorchTrainer:
    def __init__(self) -> None:
        import torch

        torch.set_num_threads(1)
        reference = sorix_model(1)  # the same initial weights, in torch's (out, in) layout
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(784, 128), torch.nn.BatchNorm1d(128), torch.nn.ReLU(),
            torch.nn.Linear(128, 64), torch.nn.ReLU(), torch.nn.Dropout(0.2),
            torch.nn.Linear(64, 10))
        with torch.no_grad():
            for i in (0, 3, 6):
                self.layers[i].weight.copy_(torch.from_numpy(reference[i].W.numpy().T.copy()))
                self.layers[i].bias.copy_(torch.from_numpy(reference[i].b.numpy().ravel()))
        self.opt = torch.optim.RMSprop(self.layers.parameters(), lr=1e-3, alpha=0.99, eps=1e-8)
        self.criterion = torch.nn.CrossEntropyLoss()
        self.torch = torch

    def epoch(self, X: np.ndarray, y: np.ndarray, epoch: int) -> None:
        torch = self.torch
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        for index in batches(len(X), epoch):
            idx = torch.from_numpy(index)
            self.opt.zero_grad()
            loss = self.criterion(self.layers(Xt[idx]), yt[idx])
            loss.backward()
            self.opt.step()

    def accuracy(self, X: np.ndarray, y: np.ndarray) -> float:
        self.layers.eval()
        with self.torch.no_grad():
            predicted = self.layers(self.torch.from_numpy(X)).argmax(dim=1).numpy()
        self.layers.train()
        return float((predicted == y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60000)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    X, y = make_data(args.rows)
    trainers: dict[str, Any] = {}
    try:
        trainers["torch eager"] = TorchTrainer()
    except ImportError:
        print("PyTorch not installed: no peer")
    trainers["sorix eager"] = SorixTrainer("eager")
    trainers["sorix compile_step"] = SorixTrainer("compile_step")
    trainers["sorix jit step"] = SorixTrainer("jit")
    # Epochs run round-robin in a shuffled order, so a change in the machine's load falls on
    # every implementation alike; ratios are taken per round.
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for epoch in range(args.epochs):
        names = list(trainers)
        np.random.default_rng(epoch).shuffle(names)
        for name in names:
            start = time.perf_counter()
            trainers[name].epoch(X, y, epoch)
            times[name].append(time.perf_counter() - start)
    base, eager = times.get("torch eager"), times["sorix eager"]
    print(f"{args.rows} rows x 784, batch {BATCH}, {args.epochs} epochs round-robin, float32, "
          f"1 BLAS thread")
    print("| | s / epoch (median) | first epoch | vs torch | vs sorix eager | accuracy |")
    print("|---|---|---|---|---|---|")

    def ratio(t: list[float], to: list[float] | None) -> str:  # the median of the rounds'
        return f"{np.median([a / b for a, b in zip(t, to)]):.2f}" if to else "-"

    for name, trainer in trainers.items():
        t = times[name]
        print(f"| {name} | {np.median(t):.2f} | {t[0]:.2f} | {ratio(t, base)} | "
              f"{ratio(t, eager)} | {trainer.accuracy(X, y):.3f} |")


if __name__ == "__main__":
    main()
