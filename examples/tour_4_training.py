"""Tour 4: train a small classifier eagerly with sorix.nn, sorix.optim and sorix.utils.data,
save and reload it, and draw its learning curve as an SVG (no plotting library needed).

    python examples/tour_4_training.py [output folder]
"""

import os
import sys

import numpy as np

import sorix
from sorix import nn, optim
from sorix.optim.lr_scheduler import CosineAnnealingLR
from sorix.utils.data import DataLoader, TensorDataset

outdir = sys.argv[1] if len(sys.argv) > 1 else "sorix-tour"
os.makedirs(outdir, exist_ok=True)

# Three interleaved spirals: a problem a linear model cannot solve.
rng = np.random.default_rng(0)
per_class, classes = 200, 3
radius = np.tile(np.linspace(0.05, 1.0, per_class), classes)
angle = (np.repeat(np.arange(classes), per_class) * 2 * np.pi / classes + radius * 7
         + rng.normal(0, 0.3, per_class * classes))
X = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
y = np.repeat(np.arange(classes), per_class)

np.random.seed(0)  # the layers' initial values and Dropout's masks
model = nn.Sequential(
    nn.Linear(2, 64, dtype="float64"), nn.BatchNorm1d(64, dtype="float64"), nn.ReLU(),
    nn.Linear(64, 64, dtype="float64"), nn.ReLU(), nn.Dropout(0.1),
    nn.Linear(64, classes, dtype="float64"),
)
print(model)
epochs = 30
optimizer = optim.Adam(model.parameters(), lr=0.02)
scheduler = CosineAnnealingLR(optimizer, T_max=epochs)
criterion = nn.CrossEntropyLoss()
loader = DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True, seed=0)


def accuracy(net):
    net.eval()
    with sorix.no_grad():
        predicted = net(sorix.tensor(X)).numpy().argmax(axis=1)
    net.train()
    return float((predicted == y).mean())


curve = []
for epoch in range(epochs):
    total = 0.0
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(xb)
    scheduler.step()
    curve.append((total / len(X), accuracy(model)))
    if epoch % 10 == 9:
        print(f"epoch {epoch + 1:2d}  loss {curve[-1][0]:.4f}  accuracy {curve[-1][1]:.3f}")

checkpoint = os.path.join(outdir, "classifier.sorix")
sorix.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, checkpoint)
np.random.seed(1)
restored = nn.Sequential(
    nn.Linear(2, 64, dtype="float64"), nn.BatchNorm1d(64, dtype="float64"), nn.ReLU(),
    nn.Linear(64, 64, dtype="float64"), nn.ReLU(), nn.Dropout(0.1),
    nn.Linear(64, classes, dtype="float64"),
)
restored.load_state_dict(sorix.load(checkpoint)["model"])
print("reloaded from", checkpoint, "accuracy", f"{accuracy(restored):.3f}")


def learning_curve_svg(points, path, width=480, height=260, pad=40):
    """Loss (blue, left scale) and accuracy (orange, 0..1) per epoch as a small SVG."""
    n = len(points)
    top_loss = max(p[0] for p in points)

    def xy(i, value, top):
        return (pad + i * (width - 2 * pad) / max(n - 1, 1),
                height - pad - value / top * (height - 2 * pad))

    def line(values, top, color):
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, v, top) for i, v in
                                                         enumerate(values)))
        return f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>'

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        f'stroke="black"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="black"/>',
        line([p[0] for p in points], top_loss, "#1f77b4"),
        line([p[1] for p in points], 1.0, "#ff7f0e"),
        f'<text x="{width / 2}" y="{height - 10}" text-anchor="middle" font-size="12">'
        f'epoch (1..{n})</text>',
        f'<text x="{pad}" y="{pad - 10}" font-size="12" fill="#1f77b4">loss (max '
        f'{top_loss:.2f})</text>',
        f'<text x="{width - pad}" y="{pad - 10}" text-anchor="end" font-size="12" '
        f'fill="#ff7f0e">accuracy (0..1)</text>',
        "</svg>",
    ]
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")
    return path


print("drew", learning_curve_svg(curve, os.path.join(outdir, "learning_curve.svg")))
