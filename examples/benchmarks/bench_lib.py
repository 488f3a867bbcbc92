"""Shared pieces of the benchmark suite: data, label noise, detectors, metrics.

Benchmark-only code (never imported by the package). Every detector returns one
score per training row, oriented like the package's scores: **lower = more likely
a label issue**.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import clone
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/: data_loaders
import data_loaders as datasets  # noqa: E402

from tod_cleanse import ToDMLPClassifier
from tod_cleanse.cleanser import fitted_scores
from tod_cleanse.scores import METHODS, resolve_method

FMNIST_INSTALL = f"apt-get update && {datasets.FASHION_MNIST_INSTALL}"

#: Class-conditional noise: each class flips to a confusable partner.
CONFUSABLE = {
    "digits": {0: 6, 1: 7, 2: 3, 3: 8, 4: 9, 5: 6, 6: 5, 7: 1, 8: 3, 9: 4},
    # 0 T-shirt 1 Trouser 2 Pullover 3 Dress 4 Coat 5 Sandal 6 Shirt 7 Sneaker 8 Bag 9 Ankle boot
    "fashion_mnist": {0: 6, 6: 0, 2: 4, 4: 2, 7: 9, 9: 7, 5: 7, 1: 3, 3: 4, 8: 2},
}


# ------------------------------------------------------------------------ data
class Skip(Exception):
    """A cell cannot run here (missing data or estimator); the message says why."""


def minilm_path() -> str:
    """:func:`data_loaders.minilm_path`, raising :class:`Skip` when it is absent."""
    try:
        return datasets.minilm_path()
    except FileNotFoundError as exc:
        raise Skip(str(exc)) from None


def load_wordnet_split(n_train: int = 2_000, n_val: int = 500, n_test: int = 5_000,
                       seed: int = 0) -> Split:
    """WordNet nouns -> lexicographer file (noun.animal, noun.food, ...).

    The texts are ``"<lemma>: <definition>"`` without ``noun.Tops``, as in
    ``examples/wordnet_bert.py``."""
    try:
        texts, labels = datasets.load_wordnet_glosses(text="lemma", include_tops=False)
    except FileNotFoundError as exc:
        raise Skip(str(exc)) from None
    X = np.array(texts, dtype=object)
    # lexicographer names sort like their file numbers, so the codes follow the numbers
    _, y = np.unique(labels, return_inverse=True)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    a, b, c = n_train, n_train + n_val, n_train + n_val + n_test
    tr, va, te = perm[:a], perm[a:b], perm[b:c]
    seen = np.isin(y, np.unique(y[tr]))  # a rare class may miss the training sample
    va, te = va[seen[va]], te[seen[te]]
    return Split("wordnet", X[tr], y[tr], X[va], y[va], X[te], y[te])


@dataclass
class Split:
    """Train / validation / test arrays of one dataset (clean labels)."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def fashion_mnist_available() -> bool:
    """Whether Fashion-MNIST is installed (``$FASHION_MNIST_DIR`` or the Debian folder)."""
    return datasets.fashion_mnist_available()


def load_digits_split(seed: int = 0) -> Split:
    """digits: 60% train, 10% validation (for eval_influence), 30% test."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    X_tr, X_va, y_tr, y_va = train_test_split(X_tr, y_tr, test_size=1 / 7, stratify=y_tr,
                                              random_state=seed)
    return Split("digits", X_tr, y_tr, X_va, y_va, X_te, y_te)


def load_fashion_mnist_split(n_train: int = 10_000, n_val: int = 1_000, n_test: int | None = None,
                             seed: int = 0, flat: bool = True) -> Split:
    """Fashion-MNIST: a stratified ``n_train`` subset of the training set, ``n_val``
    validation rows from the rest of it, and the official test set (all 10,000 rows
    unless ``n_test``)."""
    Xa, ya = datasets.load_fashion_mnist("train")
    Xt, yt = datasets.load_fashion_mnist("test")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(ya))
    tr, va = perm[:n_train], perm[n_train:n_train + n_val]
    if n_test is not None:
        te = rng.permutation(len(yt))[:n_test]
        Xt, yt = Xt[te], yt[te]

    def prep(a: np.ndarray) -> np.ndarray:
        a = a.astype(np.float32) / 255.0
        return a.reshape(len(a), -1) if flat else a[:, None, :, :]

    return Split("fashion_mnist", prep(Xa[tr]), ya[tr], prep(Xa[va]), ya[va], prep(Xt), yt)


# ----------------------------------------------------------------------- noise
def confusable_by_text(texts: np.ndarray, y: np.ndarray) -> dict[int, int]:
    """Each class -> the class whose TF-IDF centroid is most similar (cosine).

    The class-conditional noise of the text cells, where no hand-made pairing like
    :data:`CONFUSABLE` exists: computed on the training texts only.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(min_df=2, stop_words="english").fit_transform(list(texts))
    classes = np.unique(y)
    cent = np.vstack([np.asarray(tfidf[y == c].mean(axis=0)) for c in classes])
    cent /= np.linalg.norm(cent, axis=1, keepdims=True)
    sim = cent @ cent.T
    np.fill_diagonal(sim, -np.inf)
    return {int(c): int(classes[j]) for c, j in zip(classes, sim.argmax(axis=1), strict=True)}


def inject_noise(y: np.ndarray, rate: float, kind: str, dataset: str,
                 seed: int = 0, pairs: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Flip exactly ``round(rate * n)`` labels; return ``(y_noisy, is_flipped)``.

    ``kind="uniform"``: to a uniformly drawn other class. ``kind="class"``: to the
    class's confusable partner (``pairs``, default :data:`CONFUSABLE` of ``dataset``).
    """
    rng = np.random.default_rng(10_000 + seed)
    n = len(y)
    classes = np.unique(y)
    flip = rng.choice(n, size=int(round(rate * n)), replace=False)
    y_noisy = y.copy()
    if kind == "uniform":
        for i in flip:
            others = classes[classes != y[i]]
            y_noisy[i] = rng.choice(others)
    elif kind == "class":
        partner = CONFUSABLE[dataset] if pairs is None else pairs
        y_noisy[flip] = np.array([partner[int(v)] for v in y[flip]])
    else:
        raise ValueError(f"kind must be 'uniform' or 'class', got {kind!r}")
    is_flipped = y_noisy != y
    return y_noisy, is_flipped


# ----------------------------------------------------------------- estimators
def clock() -> np.ndarray:
    """``[wall seconds, CPU seconds of this process]``; differences give both costs."""
    return np.array([time.perf_counter(), time.process_time()])


def logit_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``logit[y] - max_{j != y} logit[j]`` of every row (the margin AUM averages)."""
    given = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).max(1).values
    return given - other


class BenchMixin:
    """Benchmark-only hooks on a ToD estimator (no second training loop).

    * area under the margin (AUM, Pleiss et al. 2020): ``train_step`` is wrapped and a
      forward hook on ``module_`` captures the logits of the batch that the loop
      already computes; the margin ``logit[y] - max_{j != y} logit[j]`` is averaged per
      instance over every step that saw it;
    * the time spent scoring the training rows, so that ``fit`` splits into
      training and scoring (``train_time_``, ``score_time_``: ``[wall, cpu]``); the AUM
      bookkeeping's own time, timed around it (``aum_time_``), is not charged to
      ``train_time_``: a user's ``fit`` does not run it, and the cross-validation runs
      it is compared with do not either (the forward hook's dispatch, too small to
      time per call, stays charged);
    * ``_oos_blend`` (``oos_study.py``'s blend designs, not adopted): ``oos_proba_``'s
      logits as ``(1 - w)`` the row's out-of-fold member plus ``w`` the flipped
      sub-network (both never saw the row), calibrated as one.
    """

    #: Weight of the flipped sub-network's logits beside the members' (0: the package).
    _oos_blend: float = 0.0

    def _out_of_fold_logits(self, inputs, idx, keys, flipped, h=None):
        logits = super()._out_of_fold_logits(inputs, idx, keys, flipped, h)
        blend = float(self._oos_blend)
        if not blend or getattr(self.module_, "members", None) is None:
            return logits
        return (1.0 - blend) * logits.float() + blend * flipped.float()

    def fit(self, X: Any, y: Any, instance_keys: Any = None):
        n = len(X)
        self._aum_sum = torch.zeros(n, dtype=torch.float64)
        self._aum_cnt = torch.zeros(n, dtype=torch.float64)
        self._hooked = None
        self.score_time_ = np.zeros(2)
        self._aum_clock = [0.0, 0.0]
        t0 = clock()
        super().fit(X, y, instance_keys=instance_keys)
        self.aum_time_ = np.array(self._aum_clock)
        self.train_time_ = clock() - t0 - self.score_time_ - self.aum_time_
        self.aum_ = (self._aum_sum / self._aum_cnt.clamp(min=1)).numpy()
        if getattr(self, "_aum_handle", None) is not None:
            self._aum_handle.remove()
        self._aum_handle = self._hooked = self._aum_sum = self._aum_cnt = None
        return self

    def _capture(self, module, inputs, output) -> None:
        # (logits, member logits) when the network has out-of-fold members
        self._last_logits = output[0] if isinstance(output, tuple) else output

    def train_step(self, xb, yb, kb):
        if self._hooked is not self.module_:
            self._aum_handle = self.module_.register_forward_hook(self._capture)
            self._hooked = self.module_
        loss = super().train_step(xb, yb, kb)
        w0, c0 = time.perf_counter(), time.process_time()
        with torch.no_grad():
            margin = logit_margin(self._last_logits.detach().float(), yb)
            k = kb.cpu().long()
            self._aum_sum.index_add_(0, k, margin.double().cpu())
            self._aum_cnt.index_add_(0, k, torch.ones(len(k), dtype=torch.float64))
        self._last_logits = None
        self._aum_clock[0] += time.perf_counter() - w0
        self._aum_clock[1] += time.process_time() - c0
        return loss

    def _score_training_rows(self, inputs, y_enc, keys):
        t0 = clock()
        super()._score_training_rows(inputs, y_enc, keys)
        self.score_time_ = self.score_time_ + clock() - t0


class BenchMLP(BenchMixin, ToDMLPClassifier):
    """ToDMLPClassifier with the benchmark hooks (same parameters)."""


_BENCH_CLASSES: dict[type, type] = {ToDMLPClassifier: BenchMLP}


def bench_class(estimator: Any) -> Any:
    """An unfitted benchmark subclass of ``type(estimator)`` with the same parameters."""
    if isinstance(estimator, BenchMixin):
        return clone(estimator)
    cls = type(estimator)
    if cls not in _BENCH_CLASSES:
        sub = type(f"Bench{cls.__name__}", (BenchMixin, cls), {"__module__": __name__})
        _BENCH_CLASSES[cls] = sub
        globals()[sub.__name__] = sub
    return _BENCH_CLASSES[cls](**estimator.get_params(deep=False))


# ------------------------------------------------------------------- detectors
@dataclass
class Detection:
    """One detector's scores (lower = more suspicious) and its cost."""

    scores: np.ndarray
    train_time: np.ndarray  # [wall, cpu] seconds
    score_time: np.ndarray
    n_train_runs: int
    flagged: np.ndarray | None = None  # its own yes/no decision, when it has one


def warmup(est: Any, split: Split, n: int = 256) -> None:
    """One short ToD fit and one plain fit, so that one-off start-up costs (thread
    pools, allocator, lazy imports) are not charged to the first timed method."""
    for turn_over in (True, False):
        clone(est).set_params(turn_over=turn_over, max_epochs=1, verbose=0).fit(
            split.X_train[:n], split.y_train[:n])


def run_detectors(est: Any, split: Split, y_noisy: np.ndarray, seed: int = 0,
                  n_folds: int = 5, methods: tuple[str, ...] = METHODS,
                  log=print) -> tuple[dict[str, Detection], dict]:
    """Every detector of the suite on ``(split.X_train, y_noisy)``.

    ``est`` is an unfitted ToD estimator; the baselines use the same architecture
    and training settings with ``turn_over=False`` (ordinary dropout at the same rate).
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    X, Xv, yv = split.X_train, split.X_val, split.y_val
    out: dict[str, Detection] = {}
    info: dict = {}

    # 1. one ToD run -> every ToDCleanser method (+ AUM of the seen sub-networks)
    tod = bench_class(clone(est).set_params(random_state=seed, verbose=0))
    tod.fit(X, y_noisy)
    info["tod_test_acc"] = float(tod.score(split.X_test, split.y_test))
    log(f"    ToD run: train {tod.train_time_[0]:.1f}s wall / {tod.train_time_[1]:.1f}s cpu, "
        f"test acc {info['tod_test_acc']:.3f}")
    labels = tod.y_train_
    for m in methods:
        t0 = clock()
        s = fitted_scores(tod, m, eval_set=(Xv, yv))
        out[f"tod:{m}"] = Detection(s, tod.train_time_, tod.score_time_ + clock() - t0, 1)
    out["tod:aum_seen"] = Detection(tod.aum_, tod.train_time_, np.zeros(2), 1)

    # 2. cleanlab on ToD's one-run out-of-sample pred_probs
    t0 = clock()
    q = get_label_quality_scores(labels, tod.oos_proba_)
    fl = find_label_issues(labels, tod.oos_proba_)
    out["cleanlab_tod"] = Detection(q, tod.train_time_, tod.score_time_ + clock() - t0, 1,
                                    flagged=fl)

    # 3. one normally trained model: in-sample loss and AUM
    plain = bench_class(clone(est).set_params(turn_over=False, random_state=seed, verbose=0))
    plain.fit(X, y_noisy)
    info["plain_test_acc"] = float(plain.score(split.X_test, split.y_test))
    t0 = clock()
    lp = np.log(plain.train_proba_[np.arange(len(labels)), labels] + 1e-12)
    out["loss_normal"] = Detection(lp, plain.train_time_, plain.score_time_ + clock() - t0, 1)
    out["aum_normal"] = Detection(plain.aum_, plain.train_time_, np.zeros(2), 1)
    log(f"    plain run: train {plain.train_time_[0]:.1f}s wall / {plain.train_time_[1]:.1f}s "
        f"cpu, test acc {info['plain_test_acc']:.3f}")

    # 4. cleanlab on K-fold cross-validated pred_probs, no ToD (K training runs)
    pred, t_train, t_score = cv_pred_probs(est, X, labels, seed, n_folds)
    t0 = clock()
    q = get_label_quality_scores(labels, pred)
    fl = find_label_issues(labels, pred)
    t_score += clock() - t0
    out[f"cleanlab_cv{n_folds}"] = Detection(q, t_train, t_score, n_folds, flagged=fl)
    log(f"    cleanlab {n_folds}-fold: train {t_train[0]:.1f}s wall / {t_train[1]:.1f}s cpu")

    # 5. random
    rng = np.random.default_rng(seed + 7)
    out["random"] = Detection(rng.random(len(labels)), np.zeros(2), np.zeros(2), 0)
    info["tod_estimator"] = tod
    info["cv_pred_probs"] = pred
    return out, info


def cv_pred_probs(est: Any, X: Any, labels: np.ndarray, seed: int = 0,
                  n_folds: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-fold ``pred_probs`` of ``est`` trained without ToD (``n_folds`` runs),
    with the training and scoring time (``[wall, cpu]`` each)."""
    pred = np.zeros((len(labels), len(np.unique(labels))), dtype=np.float64)
    t_train, t_score = np.zeros(2), np.zeros(2)
    skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (tr, te) in enumerate(skf.split(X, labels)):
        m = clone(est).set_params(turn_over=False, random_state=seed + 100 + k, verbose=0)
        t0 = clock()
        m.fit(X[tr], labels[tr])
        t1 = clock()
        pred[te] = m.predict_proba(X[te])
        t_train += t1 - t0
        t_score += clock() - t1
    return pred, t_train, t_score


# --------------------------------------------------------------------- metrics
def detection_metrics(scores: np.ndarray, is_flipped: np.ndarray) -> dict[str, float]:
    """AUROC, AP and precision@k (k = number of flipped rows); lower score = flagged."""
    s = -np.asarray(scores, dtype=np.float64)
    s = np.nan_to_num(s, nan=0.0, posinf=1e300, neginf=-1e300)
    k = int(is_flipped.sum())
    top = np.argsort(-s, kind="stable")[:k]
    return {
        "auroc": float(roc_auc_score(is_flipped, s)),
        "ap": float(average_precision_score(is_flipped, s)),
        "p_at_k": float(is_flipped[top].mean()) if k else float("nan"),
    }


def drop_lowest(scores: np.ndarray, n_drop: int) -> np.ndarray:
    """Boolean keep-mask that drops the ``n_drop`` lowest scores."""
    keep = np.ones(len(scores), dtype=bool)
    keep[np.argsort(scores, kind="stable")[:n_drop]] = False
    return keep


def retrain_accuracy(est: Any, split: Split, y_noisy: np.ndarray, keep: np.ndarray,
                     seeds: tuple[int, ...] = (0, 1, 2)) -> tuple[float, float]:
    """Mean and std of the test accuracy of the same architecture (ordinary dropout)
    retrained on the kept rows, over ``seeds``."""
    accs = []
    for s in seeds:
        m = clone(est).set_params(turn_over=False, random_state=1000 + s, verbose=0)
        m.fit(split.X_train[keep], y_noisy[keep])
        accs.append(m.score(split.X_test, split.y_test))
    return float(np.mean(accs)), float(np.std(accs))


def default_method_key(estimator: Any = None) -> str:
    """``"tod:<method>"`` of the cleansing score ``method="auto"`` names for ``estimator``'s
    family (:func:`tod_cleanse.scores.resolve_method`; the MLP's without one)."""
    return f"tod:{resolve_method('auto', estimator)}"


def cell_default(cell: dict, payload: dict) -> str:
    """The default's method key in one stored cell: today's ``method="auto"`` of its
    estimator family (``cell["estimator"]``, a class of :mod:`tod_cleanse`), else the
    payload's. A cell stored before that method existed raises, naming the rerun."""
    import tod_cleanse

    cls = getattr(tod_cleanse, cell.get("estimator", ""), None)
    key = default_method_key(cls) if cls is not None else "tod:" + payload["default_method"]
    if key not in cell["methods"]:
        raise KeyError(f"cell {cell['name']} has no {key} (the default of "
                       f"{cell.get('estimator')}); rerun it: run.py --only {cell['name']}")
    return key


def plot_pr(det: dict, flipped: np.ndarray, path: Path, title: str, labels: dict,
            default: str | None = None) -> None:
    """Precision-recall curves of every detector (lower score = flagged); ``default``:
    the method key drawn bold beside 5-fold cleanlab (default: the MLP's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    fig, ax = plt.subplots(figsize=(7, 5))
    for name, d in det.items():
        p, r, _ = precision_recall_curve(flipped, -np.nan_to_num(d.scores))
        ap = average_precision_score(flipped, -np.nan_to_num(d.scores))
        style = "-" if name.startswith("tod:") else "--"
        lw = 2.5 if name in (default or default_method_key(), "cleanlab_cv5") else 1.2
        ax.plot(r, p, style, lw=lw, label=f"{labels.get(name, name)} (AP {ap:.3f})")
    ax.set_xlabel("recall (flipped rows found)")
    ax.set_ylabel("precision")
    ax.set_title(f"label-issue detection: {title}")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_acc_curve(fracs: list, acc: dict, rate: float, path: Path, title: str,
                   labels: dict) -> None:
    """Test accuracy after dropping the lowest-scored fraction and retraining."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in acc.items():
        ax.plot(fracs, ys, "o-" if name != "no cleansing" else ":",
                label=labels.get(name, name))
    ax.axvline(rate, color="grey", lw=0.8, ls="--", label="true noise rate")
    ax.set_xlabel("fraction of training rows dropped")
    ax.set_ylabel("test accuracy after retraining")
    ax.set_title(f"cleansing: {title}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def replace_rows(old: list[dict], new: list[dict],
                 fields: tuple[str, ...] = ("cell", "seed", "design")) -> list[dict]:
    """``old`` without the rows that ``new`` measures again (same ``fields``), then ``new``.

    Examples
    --------
    >>> replace_rows([{"cell": "a", "seed": 0, "design": "x", "v": 1}],
    ...              [{"cell": "a", "seed": 0, "design": "x", "v": 2}])
    [{'cell': 'a', 'seed': 0, 'design': 'x', 'v': 2}]
    """
    keys = {tuple(r[f] for f in fields) for r in new}
    return [r for r in old if tuple(r[f] for f in fields) not in keys] + new


def _fmt(v: float | None, nd: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{nd}f}"


def markdown_tables(payload: dict, labels: dict) -> str:
    """Detection, cost, cleansing and target tables of a results payload."""
    cells = payload["cells"]
    defaults = [cell_default(c, payload) for c in cells]
    names = [c["name"] for c in cells]
    methods = list(dict.fromkeys(m for c in cells for m in c["methods"]))
    out = []

    def tag(m: str) -> str:
        """`` (default)`` where ``m`` is the default of every cell, else the families."""
        if m not in defaults:
            return ""
        if all(d == m for d in defaults):
            return " (default)"
        fams = dict.fromkeys(c["cell"]["model"] for c, d in zip(cells, defaults, strict=True)
                             if d == m)
        return f" (default: {', '.join(fams)})"

    def table(title: str, metric: str) -> None:
        out.append(f"\n**{title}**\n")
        out.append("| method | " + " | ".join(names) + " |")
        out.append("|---|" + "---|" * len(names))
        for m in methods:
            row = []
            best = [max(c["methods"][x][metric] for x in c["methods"]) for c in cells]
            for c, b in zip(cells, best, strict=True):
                v = c["methods"].get(m, {}).get(metric)
                row.append("–" if v is None else f"**{v:.3f}**" if v == b else f"{v:.3f}")
            name = labels.get(m, m) + tag(m)
            out.append(f"| {name} | " + " | ".join(row) + " |")

    table("Average precision (AP) of finding the flipped rows", "ap")
    table("AUROC", "auroc")
    table("Precision@k (k = number of flipped rows)", "p_at_k")

    out.append("\n**Cost per cell: seconds (CPU of one thread / wall) and training runs**\n")
    out.append("| cell | method | training | scoring | runs |")
    out.append("|---|---|---|---|---|")
    for c, default in zip(cells, defaults, strict=True):
        for m in (default, "cleanlab_tod", "loss_normal", "cleanlab_cv5"):
            d = c["methods"][m]
            out.append(f"| {c['name']} | {labels.get(m, m)} | {d['train_cpu']:.1f} / "
                       f"{d['train_wall']:.1f} | {d['score_cpu']:.2f} / {d['score_wall']:.2f} | "
                       f"{d['n_train_runs']} |")

    seeds = sorted({c.get("seeds", 3) for c in cells})
    out.append("\n**Cleansing: test accuracy after dropping k rows and retraining "
               f"(mean ± std over {' or '.join(map(str, seeds))} retraining seeds; – = "
               "not retrained in that cell)**\n")
    cn = list(dict.fromkeys(m for c in cells for m in c["cleansing"]))
    out.append("| dropped by | " + " | ".join(names) + " |")
    out.append("|---|" + "---|" * len(names))
    for m in cn:
        row = []
        for c in cells:
            v = c["cleansing"].get(m)
            row.append("–" if v is None else f"{v['acc']:.4f} ± {v['std']:.4f}")
        name = labels.get(m, m) + tag(m)
        out.append(f"| {name} | " + " | ".join(row) + " |")

    out.append("\n**Targets: default vs 5-fold cleanlab**\n")
    out.append("| cell | AP default | AP cleanlab 5-fold | cost ratio (CPU) | cost ratio (wall) "
               "| acc default | acc cleanlab 5-fold | acc no cleansing | met |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for c, default in zip(cells, defaults, strict=True):
        d, k = c["methods"][default], c["methods"]["cleanlab_cv5"]
        rc = (d["train_cpu"] + d["score_cpu"]) / (k["train_cpu"] + k["score_cpu"])
        rw = (d["train_wall"] + d["score_wall"]) / (k["train_wall"] + k["score_wall"])
        ad = c["cleansing"][default]["acc"]
        ak = c["cleansing"]["cleanlab_cv5"]["acc"]
        a0 = c["cleansing"]["no cleansing"]["acc"]
        ok = d["ap"] >= k["ap"] and rc <= 0.35
        if c["cell"]["rate"] >= 0.2:
            ok = ok and ad >= ak and ad > a0
        out.append(f"| {c['name']} | {d['ap']:.3f} | {k['ap']:.3f} | {rc:.2f} | {rw:.2f} | "
                   f"{ad:.4f} | {ak:.4f} | {a0:.4f} | {'yes' if ok else 'NO'} |")
    if payload.get("skipped"):
        out.append("\nSkipped cells:\n")
        for name, why in payload["skipped"]:
            out.append(f"- `{name}`: {why}")
    return "\n".join(out) + "\n"
