"""ToD cleansing methods next to cleanlab's label-issue finders on the digits data.

The digits data ship with scikit-learn (no download). 10% of the labels (180 of 1,797) are
flipped to another class by ``tod_cleanse.noise.flip_labels`` with a fixed seed
(``noisy_digits``); the flipped rows are the ground truth.

On the same data and the same MLP it runs ToD with every cleansing method (one training
run), cleanlab ``find_label_issues`` on 5-fold cross-validated ``pred_probs`` of the MLP
trained without ToD (5 training runs), and cleanlab on the ToD one-run ``pred_probs``,
then prints the comparison as markdown tables and writes the precision-recall curves.
``docs/cleanlab.md`` shows its output.

Run::

    python examples/compare_cleanlab_digits.py --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch

from tod_cleanse import ToDMLPClassifier
from tod_cleanse.adapters.cleanlab import (
    compare_finders,
    format_comparison,
    noisy_digits,
    tod_pred_probs,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--noise-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (1 is fastest for this small MLP on a "
                             "busy machine)")
    parser.add_argument("--plot", default="build/compare_cleanlab_digits.png")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    X, y, noise_mask = noisy_digits(args.noise_rate, random_state=args.seed)
    est = ToDMLPClassifier(max_epochs=args.epochs, random_state=args.seed, verbose=0)
    t0 = time.perf_counter()
    df, details = compare_finders(X, y, est, noise_mask=noise_mask, cv=args.cv,
                                  random_state=args.seed, plot=args.plot, return_details=True)
    total = time.perf_counter() - t0
    clean = ~noise_mask
    acc_tod = (tod_pred_probs(details["estimator"]).argmax(1) == y)[clean].mean()
    acc_cv = (details["pred_probs_cv"].argmax(1) == y)[clean].mean()
    print(f"digits: {len(y)} rows, {int(noise_mask.sum())} labels flipped "
          f"({args.noise_rate:.0%}, seed {args.seed}); ToDMLPClassifier(max_epochs="
          f"{args.epochs}) (defaults); cleanlab baseline: {args.cv}-fold CV; "
          f"torch threads: {torch.get_num_threads()}\n")
    print(format_comparison(df))
    print(f"\nout-of-sample argmax = given label on the clean rows: ToD oos_proba_ "
          f"{acc_tod:.3f}, {args.cv}-fold CV {acc_cv:.3f}")
    print(f"total {total:.1f} s; precision-recall curves: {args.plot}")


if __name__ == "__main__":
    main()
