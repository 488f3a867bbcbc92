"""Fashion-MNIST with ToDVGGClassifier: find injected label noise from one training run.

Data: the Debian package ``dataset-fashion-mnist`` (no download at run time)::

    sudo apt-get install -y dataset-fashion-mnist

The script takes a seeded subset of the training images, flips a fraction of
the labels (uniformly to another class, or to a confusable class: T-shirt <->
shirt, pullover <-> coat, sneaker <-> ankle boot...), trains a narrow VGG11-BN
with turn-over dropout on the 28x28 images as they are, and prints how well
each score ranks the flipped rows (AUROC, AP), the test accuracy and the wall
times of training and of scoring.

    python examples/fashion_mnist_vgg.py              # both noise types
    python examples/fashion_mnist_vgg.py --n-train 2000 --epochs 3   # quicker
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from data_loaders import fashion_mnist_available, load_fashion_mnist
from sklearn.metrics import average_precision_score, roc_auc_score

from tod_cleanse import ToDVGGClassifier
from tod_cleanse.noise import flip_labels

INSTALL = "sudo apt-get install -y dataset-fashion-mnist"
# Class-conditional noise: each class flips to a confusable one.
CONFUSABLE = {0: 6, 6: 0, 2: 4, 4: 2, 7: 9, 9: 7, 3: 0, 1: 3, 5: 7, 8: 2}


def inject_noise(y: np.ndarray, rate: float, kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded label noise through the package's one flipper (uniform or to CONFUSABLE)."""
    pairs = None if kind == "uniform" else CONFUSABLE
    return flip_labels(y, rate, random_state=seed, pairs=pairs, classes=np.arange(10),
                       sampling="bernoulli")


def report(name: str, score: np.ndarray, flipped: np.ndarray) -> None:
    print(f"  {name:<42s} AUROC {roc_auc_score(flipped, score):.3f}   "
          f"AP {average_precision_score(flipped, score):.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=10_000)
    ap.add_argument("--n-eval", type=int, default=200, help="clean rows for score_influence")
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--noise", choices=["uniform", "confusable", "both"], default="both")
    ap.add_argument("--rate", type=float, default=0.2)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--width", type=float, default=0.125, help="width_multiplier")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    if not fashion_mnist_available():
        print(f"SKIP: Fashion-MNIST not found. Install it with:\n  {INSTALL}")
        return 0
    torch.set_num_threads(args.threads)
    X_all, y_all = load_fashion_mnist("train")  # uint8 (60000, 28, 28), int64 labels
    X_test, y_test = load_fashion_mnist("test")
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(X_all.shape[0])
    tr, ev = order[:args.n_train], order[args.n_train:args.n_train + args.n_eval]
    X_tr, y_tr, X_ev, y_ev = X_all[tr], y_all[tr], X_all[ev], y_all[ev]
    X_test, y_test = X_test[:args.n_test], y_test[:args.n_test]
    print(f"Fashion-MNIST: {args.n_train} training images (28x28, uint8), {args.n_eval} clean "
          f"eval images, {args.n_test} test images; VGG11-BN, width x{args.width}, "
          f"{args.epochs} epochs, {args.threads} CPU threads")

    kinds = ["uniform", "confusable"] if args.noise == "both" else [args.noise]
    for kind in kinds:
        y_noisy, flipped = inject_noise(y_tr, args.rate, kind, args.seed + 1)
        print(f"\n[{kind} noise] {flipped.sum()} of {flipped.size} labels flipped "
              f"({flipped.mean():.1%})")
        clf = ToDVGGClassifier(arch="vgg11_bn", width_multiplier=args.width,
                               max_epochs=args.epochs, batch_size=128, lr=0.05,
                               optimizer="sgd", weight_decay=5e-4, augment=False,
                               random_state=args.seed, verbose=0)
        t0 = time.perf_counter()
        clf.fit(X_tr, y_noisy)  # training, then self-influence of every training row
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        infl = clf.score_influence(X_ev, y_ev)  # (n_eval, n_train) influence matrix
        t_score = time.perf_counter() - t0
        print(f"  fit (training + self-influence): {t_fit:7.1f} s")
        print(f"  score_influence {infl.shape[0]} x {infl.shape[1]} pairs: {t_score:7.1f} s")
        print(f"  test accuracy (full network):    {clf.score(X_test, y_test):.3f}")
        oos_given = clf.oos_proba_[np.arange(y_noisy.size), y_noisy]
        report("self-influence (high = suspect)", clf.self_influence_, flipped)
        report("1 - out-of-sample p(given label)", 1 - oos_given, flipped)
        report("-(influence on clean eval set, summed)", -infl.sum(axis=0), flipped)
        full_given = clf.train_proba_[np.arange(y_noisy.size), y_noisy]
        report("1 - full-network p(given label) (default)", 1 - full_given, flipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
