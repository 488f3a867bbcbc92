"""The demo behind ``tod-cleanse demo``: clean the digits and compare with cleanlab, offline.

The digits (1,797 8x8 images, ships with scikit-learn) are split 75/25; 10% of the
training labels are flipped with a seeded generator (the ground truth). Then:

* ToD: one training run of ``ToDMLPClassifier`` inside ``ToDCleanser`` (default
  method, ``drop_fraction="auto"``);
* cleanlab: ``find_label_issues`` on 5-fold cross-validated ``pred_probs`` of the
  same architecture trained without ToD (5 training runs);
* random removal of as many rows as ToD drops, and the oracle (every flipped row
  removed), as references.

For each it prints precision and recall of the dropped rows against the injected
noise, and the test accuracy of the same architecture retrained on the kept rows
(mean over ``n_seeds`` retraining seeds). The command line lives in
:mod:`tod_cleanse.cli.demo`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split

from tod_cleanse import ToDCleanser, ToDMLPClassifier
from tod_cleanse.noise import flip_labels

logger = logging.getLogger(__name__)

__all__ = ["DemoResult", "run_demo"]


@dataclass
class DemoResult:
    """Figures of one demo run."""

    table: pd.DataFrame
    n_train: int
    n_noisy: int
    method: str


def _retrain_accuracy(base, X, y, keep, X_test, y_test, seeds) -> float:
    accs = []
    for seed in seeds:
        model = clone(base).set_params(turn_over=False, random_state=seed, verbose=0)
        accs.append(model.fit(X[keep], y[keep]).score(X_test, y_test))
    return float(np.mean(accs))


def run_demo(
    noise_rate: float = 0.1,
    random_state: int = 0,
    n_seeds: int = 3,
    cv: int = 5,
    verbose: int = 1,
    max_epochs: int | None = None,
    device: str = "auto",
) -> DemoResult:
    """Run the demo and return its table (one row per finder).

    Parameters
    ----------
    noise_rate : float, default=0.1
        Fraction of training labels flipped (uniformly to another class).
    random_state : int, default=0
        Seed of the split, the noise, the models and the CV folds.
    n_seeds : int, default=3
        Retraining seeds averaged in the test accuracy column.
    cv : int, default=5
        Folds of the cleanlab baseline.
    verbose : int, default=1
        Progress bars of the ToD fit.
    max_epochs : int, optional
        Training epochs of every model (default: the MLP's default).
    device : str, default="auto"
        Torch device of every model.

    Returns
    -------
    DemoResult
    """
    from cleanlab.filter import find_label_issues

    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y,
                                              random_state=random_state)
    y_noisy, flipped = flip_labels(y_tr, noise_rate, random_state=random_state)
    base = ToDMLPClassifier(random_state=random_state, verbose=verbose, device=device)
    if max_epochs is not None:
        base.set_params(max_epochs=max_epochs)
    seeds = [random_state + s for s in range(n_seeds)]
    rows = []

    def row(name, drop, runs, seconds):
        keep = ~drop
        tp = int((drop & flipped).sum())
        rows.append({
            "finder": name,
            "dropped": int(drop.sum()),
            "precision": tp / drop.sum() if drop.sum() else float("nan"),
            "recall": tp / flipped.sum() if flipped.sum() else float("nan"),
            "test_accuracy": _retrain_accuracy(base, X_tr, y_noisy, keep, X_te, y_te, seeds),
            "training_runs": runs,
            "detect_seconds": seconds,
        })

    row("no cleansing", np.zeros_like(flipped), 0, 0.0)
    t0 = time.perf_counter()
    cleanser = ToDCleanser(estimator=base).fit(X_tr, y_noisy)
    tod_seconds = time.perf_counter() - t0
    tod_drop = cleanser.issues_["is_issue"].to_numpy()
    row(f"ToD ({cleanser.method_}, auto)", tod_drop, 1, tod_seconds)

    t0 = time.perf_counter()
    folds = StratifiedKFold(cv, shuffle=True, random_state=random_state)
    plain = clone(base).set_params(turn_over=False, verbose=0)
    pred_probs = cross_val_predict(plain, X_tr, y_noisy, cv=folds, method="predict_proba")
    cl_drop = find_label_issues(y_noisy, pred_probs, n_jobs=1)
    row(f"cleanlab find_label_issues, {cv}-fold CV", cl_drop, cv, time.perf_counter() - t0)

    rng = np.random.default_rng([random_state, 1])  # a stream apart from the noise's
    random_drop = np.zeros_like(flipped)
    random_drop[rng.choice(flipped.shape[0], int(tod_drop.sum()), replace=False)] = True
    row("random removal (same count as ToD)", random_drop, 0, 0.0)
    row("oracle (drop exactly the flipped rows)", flipped.copy(), 0, 0.0)
    table = pd.DataFrame(rows).set_index("finder")
    return DemoResult(table, int(y_tr.shape[0]), int(flipped.sum()), cleanser.method_)
