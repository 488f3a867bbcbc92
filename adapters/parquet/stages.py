"""The read, train and score stages of a clean, each a function of small dataclasses.

Every function takes what it needs and returns a dataclass, so that another engine
(e.g. Ray) can run the same steps per partition: :func:`score_batch` scores one
batch with a fitted estimator, :func:`choose_training_rows` draws the seeded
training sample from the label codes alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tod_cleanse.scores import cleansing_scores, flag_issues, given_label_proba

from .checksum import KeyChecksum
from .errors import fail
from .features import Features, concat, to_estimator
from .plan import CleanPlan, label_kind
from .source import Source, decode, keys_of, progress_bar

logger = logging.getLogger(__name__)

__all__ = ["LabelsKeys", "Trained", "Scored", "ClassMap", "read_labels_keys",
           "choose_training_rows", "train", "score", "score_batch"]


@dataclass
class LabelsKeys:
    """Stage ``read``: per input row (scan order) its int64 key and label code."""

    keys: np.ndarray
    checksum: KeyChecksum
    classes: pa.Array
    codes: np.ndarray

    @property
    def n(self) -> int:
        """Number of input rows."""
        return int(self.keys.shape[0])

    @property
    def classes_np(self) -> np.ndarray:
        """The sorted classes as numpy values."""
        return self.classes.to_numpy(zero_copy_only=False)


@dataclass
class Trained:
    """Stage ``train``: the fitted cleanser and which rows it trained on."""

    cleanser: Any
    train_pos: np.ndarray
    trained: np.ndarray
    report_data: tuple[Any, Any] | None = None

    @property
    def m(self) -> int:
        """Number of training rows."""
        return int(self.train_pos.shape[0])


@dataclass
class Scored:
    """Stage ``score``: per input row its score, prediction, rank and decision."""

    scores: np.ndarray
    oos_pred: np.ndarray
    p_label: np.ndarray
    rank: np.ndarray
    is_issue: np.ndarray
    decision: str

    @property
    def n_dropped(self) -> int:
        """Rows flagged (to ``dropped/``)."""
        return int(self.is_issue.sum())


def read_labels_keys(plan: CleanPlan) -> LabelsKeys:
    """Stream the label and key columns once: codes, int64 keys and their checksum."""
    src, cfg = plan.src, plan.config
    n, label, key = src.n_rows, cfg.label, cfg.key
    chunks: list[pa.Array] = []
    keys = np.empty(n, dtype=np.int64)
    with progress_bar(n, "reading labels and keys", cfg.progress) as bar:
        for fi, start, batch in src.batches([label] + ([key] if key else [])):
            where = src.fragments[fi].path
            lab = decode(batch.column(label))
            if lab.null_count:
                fail(f"{where}: label column {label!r} has {lab.null_count} missing value(s)")
            if pa.types.is_floating(lab.type) and not pc.all(pc.is_finite(lab)).as_py():
                fail(f"{where}: label column {label!r} contains NaN or infinite labels")
            chunks.append(lab)
            stop = start + batch.num_rows
            keys[start:stop] = (keys_of(batch.column(key), key, where) if key
                                else np.arange(start, stop))
            bar.update(batch.num_rows)
    if key:
        _check_unique(src, key, keys)
    labels = pa.chunked_array(chunks, type=chunks[0].type)
    classes = decode(pc.unique(labels))
    classes = classes.take(pc.array_sort_indices(classes))
    if len(classes) < 2:
        fail(f"--label: column {label!r} has the single class {classes[0].as_py()!r}; "
             "cleaning needs at least two classes")
    codes = pc.index_in(labels, value_set=classes).to_numpy().astype(np.int32)
    return LabelsKeys(keys, KeyChecksum().update(keys), classes, codes)


def _check_unique(src: Source, key: str, keys: np.ndarray) -> None:
    order = np.argsort(keys, kind="stable")
    dup = np.flatnonzero(keys[order[1:]] == keys[order[:-1]])
    if dup.size:
        example = src.raw_key(key, int(order[dup[0]]))
        fail(f"--key: column {key!r} has duplicate values ({dup.size} duplicate(s), "
             f"e.g. {example!r})")


def choose_training_rows(codes: np.ndarray, n_classes: int, max_train_rows: int,
                         seed: int) -> np.ndarray:
    """Sorted positions of the training rows: all, or a seeded sample of ``max_train_rows``.

    A sample that misses a class gets up to 5 rows of it.

    Examples
    --------
    >>> choose_training_rows(np.array([0, 1, 0, 1]), 2, 10, seed=0).tolist()
    [0, 1, 2, 3]
    >>> len(choose_training_rows(np.arange(100) % 2, 2, 10, seed=0))
    10
    """
    n = codes.shape[0]
    if n <= max_train_rows:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    pos = np.sort(rng.choice(n, size=int(max_train_rows), replace=False))
    missing = np.setdiff1d(np.arange(n_classes), np.unique(codes[pos]))
    if missing.size:
        extra = [rng.choice(np.flatnonzero(codes == c), size=min(5, int(np.sum(codes == c))),
                            replace=False) for c in missing]
        pos = np.union1d(pos, np.concatenate(extra))
        logger.info("added %d rows of %d classes missing from the training sample",
                    sum(len(e) for e in extra), missing.size)
    return pos


def _collect(plan: CleanPlan, trained: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features and raw keys of the rows where ``trained`` is true, in scan order."""
    src, cfg = plan.src, plan.config
    parts, raw = [], []
    cols = list(cfg.columns) + ([cfg.key] if cfg.key else [])
    with progress_bar(src.n_rows, "collecting training rows", cfg.progress) as bar:
        for fi, start, batch in src.batches(cols):
            sel = np.flatnonzero(trained[start:start + batch.num_rows])
            if sel.size:
                rows = batch.take(pa.array(sel))
                parts.append(plan.extract(rows, src.fragments[fi].path))
                raw.append(decode(rows.column(cfg.key)).to_numpy(zero_copy_only=False)
                           if cfg.key else start + sel)
            bar.update(batch.num_rows)
    return concat(parts), np.concatenate(raw)


def read_eval(plan: CleanPlan, classes: pa.Array) -> tuple[Any, np.ndarray]:
    """The ``--eval`` data: its features and labels, of the training labels' type."""
    cfg = plan.config
    src = Source(cfg.eval_path, cfg.batch_rows, what="--eval")
    eval_type = src.check_column(cfg.label, "--eval --label")
    if label_kind(eval_type) != label_kind(plan.label_type):
        fail(f"--eval {src.path}: label column {cfg.label!r} has type {eval_type} but the "
             f"training labels in {plan.src.path} are {plan.label_type}; convert one of them")
    extract = Features(src, cfg.kind, cfg.columns, f"--eval {cfg.option}", cfg.image_shape)
    parts, labels = [], []
    for fi, _, batch in src.batches(list(cfg.columns) + [cfg.label]):
        where = src.fragments[fi].path
        lab = decode(batch.column(cfg.label))
        if lab.null_count:
            fail(f"{where}: label column {cfg.label!r} has missing values")
        if not pc.all(pc.is_in(lab, value_set=classes.cast(lab.type))).as_py():
            fail(f"{where}: label column {cfg.label!r} has labels absent from the input")
        labels.append(lab.to_numpy(zero_copy_only=False))
        parts.append(extract(batch, where))
    return to_estimator(cfg.kind, concat(parts)), np.concatenate(labels)


def train(plan: CleanPlan, lk: LabelsKeys, fit: Any = None) -> Trained:
    """Stage ``train``: fit a :class:`~tod_cleanse.ToDCleanser` on the training rows.

    The estimator gets the *raw* keys of the rows (``instance_keys``); it owns their
    hashing, and reports show them as given. ``fit(cleanser, X, y, keys)``, if given,
    returns the fitted cleanser in place of ``cleanser.fit`` (the Ray engine trains
    data-parallel with it).
    """
    from tod_cleanse import ToDCleanser

    cfg = plan.config
    train_pos = choose_training_rows(lk.codes, len(lk.classes), cfg.max_train_rows, cfg.seed)
    trained = np.zeros(lk.n, dtype=bool)
    trained[train_pos] = True
    X, raw_keys = _collect(plan, trained)
    y = lk.classes_np[lk.codes[train_pos]]
    eval_set = read_eval(plan, lk.classes) if plan.method == "eval_influence" else None
    cleanser = ToDCleanser(estimator=plan.estimator, method=plan.method,
                           drop_fraction=cfg.drop_fraction, threshold=cfg.threshold,
                           eval_set=eval_set)
    logger.info("training %s on %d of %d rows", type(plan.estimator).__name__,
                train_pos.shape[0], lk.n)
    X_est = to_estimator(cfg.kind, X)
    try:
        if fit is None:
            cleanser.fit(X_est, y, instance_keys=raw_keys)
        else:
            cleanser = fit(cleanser, X_est, y, raw_keys)
    except (TypeError, ValueError) as exc:
        fail(f"training on {plan.src.path} failed: {exc}")
    return Trained(cleanser, train_pos, trained, (X_est, y) if cfg.report else None)


@dataclass(frozen=True)
class ClassMap:
    """Index maps between the sorted input classes and the estimator's ``classes_``."""

    to_est: np.ndarray
    to_global: np.ndarray

    @classmethod
    def of(cls, estimator: Any, classes: np.ndarray) -> ClassMap:
        """Maps for a fitted ``estimator`` and the sorted input ``classes``."""
        est_classes = estimator.classes_.tolist()
        index = {c: i for i, c in enumerate(est_classes)}
        glob = classes.tolist()
        return cls(np.array([index[c] for c in glob], dtype=np.int64),
                   np.array([glob.index(c) for c in est_classes], dtype=np.int32))


def score_batch(estimator: Any, X: Any, codes: np.ndarray, method: str,
                cmap: ClassMap) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score rows the estimator never trained on with its full network.

    Returns the scores of ``method``, the predicted label codes and the probability of
    the given label.
    """
    proba = estimator.predict_proba(X)
    y_est = cmap.to_est[codes]
    return (cleansing_scores(method, y_est, oos_proba=proba),
            cmap.to_global[np.argmax(proba, axis=1)], given_label_proba(proba, y_est))


def score(plan: CleanPlan, lk: LabelsKeys, tr: Trained) -> Scored:
    """Stage ``score``: scores of every row, then one decision on all of them."""
    cfg, src, n, m = plan.config, plan.src, lk.n, tr.m
    est = tr.cleanser.estimator_
    cmap = ClassMap.of(est, lk.classes_np)
    scores = np.empty(n, dtype=np.float64)
    oos_pred = np.empty(n, dtype=np.int32)
    p_label = np.empty(n, dtype=np.float32)
    scores[tr.train_pos] = tr.cleanser.scores_
    oos_pred[tr.train_pos] = cmap.to_global[np.argmax(est.oos_proba_, axis=1)]
    p_label[tr.train_pos] = given_label_proba(est.oos_proba_, est.y_train_)
    if m < n:
        if hasattr(est, "verbose"):
            est.set_params(verbose=0)
        with progress_bar(n - m, "scoring untrained rows (full network)", cfg.progress) as bar:
            for fi, start, batch in src.batches(list(cfg.columns)):
                sel = np.flatnonzero(~tr.trained[start:start + batch.num_rows])
                if sel.size:
                    X = plan.extract(batch.take(pa.array(sel)), src.fragments[fi].path)
                    pos = start + sel
                    scores[pos], oos_pred[pos], p_label[pos] = score_batch(
                        est, to_estimator(cfg.kind, X), lk.codes[pos], plan.method, cmap)
                    bar.update(sel.size)
    rank, is_issue, decision = _decide(plan, tr, scores)
    return Scored(scores, oos_pred, p_label, rank, is_issue, decision)


def _decide(plan: CleanPlan, tr: Trained, scores: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, str]:
    """One rule on all rows (:func:`tod_cleanse.scores.flag_issues`)."""
    cfg, n, m = plan.config, scores.shape[0], tr.m
    rate = (m - len(tr.cleanser.sample_indices_)) / m
    rank, is_issue = flag_issues(scores, drop_fraction=cfg.drop_fraction,
                                 threshold=cfg.threshold, auto_count=int(round(rate * n)))
    if cfg.threshold is not None:
        note = f"score < {cfg.threshold}"
    elif cfg.drop_fraction == "auto":
        note = ("auto: ToDCleanser's count (confident-learning issue rate of the training "
                f"rows, {rate:.4f})" + (f" times {n} rows" if m < n else "") + ", lowest scores")
    else:
        note = f"lowest {cfg.drop_fraction} of all rows"
    if m < n:
        note += f" (trained on a sample of {m} rows)"
    return rank, is_issue, note
