"""Fashion-MNIST with ToDResNetClassifier: injected label noise, ToD vs 5-fold cleanlab.

Data: the Debian package ``dataset-fashion-mnist`` (no download at run time)::

    sudo apt-get install -y dataset-fashion-mnist

A seeded subset of the training images gets a fraction of its labels flipped
(uniformly to another class, or to a confusable class: T-shirt <-> shirt,
pullover <-> coat ...). A CPU-sized ResNet-18 (channels x1/8, 28x28 images
zero-padded to 32) is trained once with turn-over dropout; every ToD cleansing
method is scored from that one run and compared, on the same rows, with
cleanlab's ``find_label_issues`` on 5-fold cross-validated ``pred_probs`` of
the same ResNet trained without ToD (5 runs) and with cleanlab on the ToD
one-run ``pred_probs`` (:func:`tod_cleanse.adapters.cleanlab.compare_finders`).

    python examples/fashion_mnist_resnet.py                       # both noise types
    python examples/fashion_mnist_resnet.py --n-train 1000 --epochs 2 --noise uniform  # quick
    python examples/fashion_mnist_resnet.py --out examples/results/fashion_mnist_resnet.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from data_loaders import FASHION_MNIST_INSTALL, fashion_mnist_available, load_fashion_mnist
from fashion_mnist_vgg import inject_noise

from tod_cleanse import ToDResNetClassifier
from tod_cleanse.adapters.cleanlab import compare_finders, format_comparison


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-eval", type=int, default=200, help="clean rows for eval_influence")
    ap.add_argument("--noise", choices=["uniform", "confusable", "both"], default="both")
    ap.add_argument("--rate", type=float, default=0.2)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--width", type=float, default=0.125, help="width_multiplier")
    ap.add_argument("--cv", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write the tables here (.md)")
    args = ap.parse_args()

    if not fashion_mnist_available():
        print(f"SKIP: Fashion-MNIST not found. Install it with:\n  {FASHION_MNIST_INSTALL}")
        return 0
    torch.set_num_threads(args.threads)
    X_all, y_all = load_fashion_mnist("train")  # uint8 (60000, 28, 28), int64 labels
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(X_all.shape[0])
    tr, ev = order[:args.n_train], order[args.n_train:args.n_train + args.n_eval]
    X_tr, y_tr, X_ev, y_ev = X_all[tr], y_all[tr], X_all[ev], y_all[ev]
    est = ToDResNetClassifier(arch="resnet18", width_multiplier=args.width, max_epochs=args.epochs,
                              batch_size=128, lr=0.05, optimizer="sgd", weight_decay=5e-4,
                              random_state=args.seed, verbose=0)
    lines = [f"# Fashion-MNIST, ToDResNetClassifier vs {args.cv}-fold cleanlab\n",
             f"`python examples/fashion_mnist_resnet.py --n-train {args.n_train} --epochs "
             f"{args.epochs} --width {args.width} --rate {args.rate} --noise {args.noise} "
             f"--seed {args.seed} --threads {args.threads}`\n",
             f"{args.n_train} training images (28x28, padded to 32), {args.n_eval} clean eval "
             f"images for `eval_influence`; ResNet-18 with channels x{args.width}, "
             f"{args.epochs} epochs of SGD (lr 0.05, linear decay), {args.threads} CPU "
             f"thread(s). Rows: finders; `training_runs` counts trainings; "
             "`wall_time_s` includes them.\n"]
    kinds = ["uniform", "confusable"] if args.noise == "both" else [args.noise]
    for kind in kinds:
        y_noisy, flipped = inject_noise(y_tr, args.rate, kind, args.seed + 1)
        t0 = time.perf_counter()
        df = compare_finders(X_tr, y_noisy, est, noise_mask=flipped, cv=args.cv,
                             eval_set=(X_ev, y_ev), random_state=args.seed)
        head = (f"## {kind} noise: {int(flipped.sum())} of {flipped.size} labels flipped "
                f"({flipped.mean():.1%}); total {time.perf_counter() - t0:.0f} s\n")
        table = format_comparison(df)
        print(head + "\n" + table + "\n", flush=True)
        lines += [head, table, ""]
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
