"""HTML report of a ToD cleansing run on Fashion-MNIST with 10% seeded label noise.

An MLP with turn-over dropout on the flattened 28x28 pixels of a 3,000-row subset;
thumbnails come from the pixels (``image_shape=(28, 28)``). Needs the Debian data
package (no download from a hub):

    apt-get install -y dataset-fashion-mnist

Run (from the repository root):

    .venv/bin/python examples/report_fashion_mnist.py --out build/fashion_report.html \\
        --screenshot docs/report.png

``--screenshot`` renders the HTML with headless Chromium (``apt-get install -y
chromium``) into a 1200x1600 PNG of the top of the report, plus
``<name>_explanations.png`` showing the first misclassified test examples.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from data_loaders import FASHION_MNIST_CLASSES, fashion_mnist_dir, load_fashion_mnist

from tod_cleanse import ToDCleanser, ToDMLPClassifier, write_report

CLASSES = np.array(FASHION_MNIST_CLASSES)


def flip_labels(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Uniform seeded label noise: ``fraction`` of the rows get another class."""
    y_noisy = y.copy()
    for i in rng.choice(len(y), size=int(round(fraction * len(y))), replace=False):
        others = np.setdiff1d(np.arange(len(CLASSES)), [y[i]])
        y_noisy[i] = rng.choice(others)
    return y_noisy


def chromium_png(html: Path, out: Path, height: int) -> None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("chromium not found: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={out}",
             f"--window-size=1200,{height}", html.resolve().as_uri()],
            check=True, capture_output=True, timeout=120)


def section_crop(tall: Path, out: Path, section: int, height: int = 1400) -> None:
    """Crop ``height`` pixels from the ``section``-th h2 rule (0-based) of a tall screenshot."""
    from PIL import Image

    img = np.asarray(Image.open(tall).convert("RGB")).astype(int)
    rule = (np.abs(img - 221).sum(axis=2) < 6).mean(axis=1) > 0.8  # the #ddd h2 border
    starts = np.flatnonzero(rule & ~np.roll(rule, 1))
    top = max(0, int(starts[section]) - 60)
    Image.fromarray(img[top: top + height].astype(np.uint8)).save(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=fashion_mnist_dir())
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drop-fraction", default="auto",
                        help="'auto' (ToDCleanser's default) or a fraction of the rows")
    parser.add_argument("--out", type=Path, default=Path("build/fashion_report.html"))
    parser.add_argument("--screenshot", type=Path, default=None)
    args = parser.parse_args()

    try:
        train_x, train_y = load_fashion_mnist("train", args.data_dir)
        test_x, test_y = load_fashion_mnist("test", args.data_dir)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 1
    torch.set_num_threads(2)
    rng = np.random.default_rng(args.seed)
    tr = np.sort(rng.choice(len(train_y), args.n_train, replace=False))
    te = np.sort(rng.choice(len(test_y), args.n_test, replace=False))
    X = train_x[tr].reshape(len(tr), -1).astype(np.float32) / 255.0
    X_test = test_x[te].reshape(len(te), -1).astype(np.float32) / 255.0
    y_true = train_y[tr].astype(np.int64)
    y_noisy = flip_labels(y_true, args.noise, rng)
    flipped = y_noisy != y_true
    keys = np.array([f"train-{i}" for i in tr])

    start = time.perf_counter()
    est = ToDMLPClassifier(hidden_layer_sizes=(256, 256), max_epochs=args.max_epochs,
                           random_state=args.seed, verbose=0)
    drop = args.drop_fraction if args.drop_fraction == "auto" else float(args.drop_fraction)
    cleanser = ToDCleanser(est, drop_fraction=drop).fit(X, CLASSES[y_noisy], instance_keys=keys)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    report = write_report(cleanser, X, CLASSES[y_noisy], args.out, X_test=X_test,
                          y_test=CLASSES[test_y[te]], image_shape=(28, 28), max_test=12,
                          title=f"tod_cleanse report: Fashion-MNIST ({args.n_train:,} rows, "
                                f"{args.noise:.0%} label noise, MLP)")
    report_s = time.perf_counter() - start

    dropped = cleanser.issues_["is_issue"].to_numpy()
    hit = int((dropped & flipped).sum())
    print(f"training rows: {len(tr)}, flipped labels: {int(flipped.sum())} (seed {args.seed})")
    print(f"rows to drop: {int(dropped.sum())}, of which flipped: {hit} "
          f"(precision {hit / max(1, dropped.sum()):.3f}, recall {hit / flipped.sum():.3f})")
    print(f"test accuracy: {cleanser.estimator_.score(X_test, CLASSES[test_y[te]]):.4f}")
    print(f"fit {fit_s:.1f} s, report {report_s:.1f} s")
    print(f"report: {report.html} ({report.html.stat().st_size / 1e6:.2f} MB)")
    for name, path in report.figures.items():
        print(f"figure {name}: {path}")

    if args.screenshot is not None:
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        chromium_png(report.html, args.screenshot, 1600)
        with tempfile.TemporaryDirectory() as tmp:
            tall = Path(tmp) / "tall.png"
            chromium_png(report.html, tall, 6000)
            extra = args.screenshot.with_name(f"{args.screenshot.stem}_explanations.png")
            section_crop(tall, extra, section=3)
        print(f"screenshots: {args.screenshot}, {extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
