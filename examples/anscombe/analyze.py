"""Fit a line to one of Anscombe's four data sets and plot it.

Anscombe (1973), "Graphs in Statistical Analysis", The American Statistician 27(1):
four data sets with the same summary statistics and very different shapes. This is
the kind of one-off script vestige is for: run it per data set, look, move on.
"""

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--dataset", default="I", choices=["I", "II", "III", "IV"])
parser.add_argument("--data", default="data/anscombe.csv")
parser.add_argument("--out", default="out")
args = parser.parse_args()

with open(args.data, newline="") as f:
    rows = [r for r in csv.DictReader(f) if r["dataset"] == args.dataset]
x = np.array([float(r["x"]) for r in rows])
y = np.array([float(r["y"]) for r in rows])
slope, intercept = np.polyfit(x, y, 1)
r = np.corrcoef(x, y)[0, 1]

out = Path(args.out)
out.mkdir(exist_ok=True)
with open(out / f"summary_{args.dataset}.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["dataset", "n", "mean_x", "mean_y", "var_x", "var_y", "r", "slope", "intercept"])
    w.writerow([args.dataset, len(x), f"{x.mean():.2f}", f"{y.mean():.2f}", f"{x.var(ddof=1):.2f}",
                f"{y.var(ddof=1):.2f}", f"{r:.3f}", f"{slope:.3f}", f"{intercept:.2f}"])

fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
ax.scatter(x, y, color="tab:blue")
xs = np.linspace(2, 20, 2)
ax.plot(xs, slope * xs + intercept, color="tab:red")
ax.set_title(f"Anscombe {args.dataset}: y = {slope:.2f}x + {intercept:.2f}, r = {r:.2f}")
ax.set_xlim(2, 20)
ax.set_ylim(2, 14)
fig.tight_layout()
fig.savefig(out / f"fit_{args.dataset}.png", metadata={"Software": None})
print(f"data set {args.dataset}: n={len(x)} slope={slope:.3f} intercept={intercept:.2f} r={r:.3f}")
