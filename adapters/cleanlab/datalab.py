"""The Datalab issue type ``"tod_influence"`` (:class:`ToDInfluenceIssueManager`).

Registered through cleanlab's public
``cleanlab.datalab.internal.issue_manager_factory.register`` by
:func:`register_issue_manager`, which :mod:`tod_cleanse.adapters.cleanlab` calls on
import; calling it again does nothing.

References
----------
.. [1] S. Kobayashi, S. Yokoi, J. Suzuki, K. Inui. *Efficient Estimation of Influence of a
   Training Instance*. SustaiNLP 2020. arXiv:2012.04207.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from cleanlab.datalab.internal import issue_manager_factory
from cleanlab.datalab.internal.issue_manager import IssueManager
from cleanlab.datalab.internal.task import Task

from tod_cleanse.cleanser import ToDCleanser, fitted_scores
from tod_cleanse.estimators.base import BaseToDClassifier
from tod_cleanse.scores import (
    AUTO_METHOD,
    auto_count_views,
    check_cleansing_params,
    check_threshold,
    parse_drop_fraction,
    resolve_method,
    select_issues,
)

from ._common import check_tod_estimator, is_fitted
from .pred_probs import tod_quality_scores

logger = logging.getLogger(__name__)

__all__ = ["ISSUE_NAME", "ToDInfluenceIssueManager", "register_issue_manager"]

ISSUE_NAME = "tod_influence"
_ARGS = {
    "estimator": None, "features": None, "scores": None, "pred_probs": None, "method": None,
    "drop_fraction": "auto", "threshold": None, "eval_set": None, "instance_keys": None,
}


class ToDInfluenceIssueManager(IssueManager):
    """Datalab issue type ``"tod_influence"``: harmful training rows found by ToD [1]_.

    Registered for classification (:func:`register_issue_manager`) when
    :mod:`tod_cleanse.adapters.cleanlab` is imported. Datalab passes the dictionary
    of ``issue_types["tod_influence"]`` to both the constructor and
    :meth:`find_issues`; the constructor validates every argument before any work
    and raises a ``ValueError``/``TypeError`` that reaches the caller. Errors
    during the work itself are caught by Datalab (it prints one line and moves
    on), so this manager also logs them and raises a ``RuntimeWarning`` with the
    message.

    Parameters
    ----------
    datalab : cleanlab.Datalab
    estimator : BaseToDClassifier, optional
        A ToD estimator. Unfitted: it is trained (once, via :class:`ToDCleanser`)
        on ``features`` and the Datalab's labels. Fitted: it must have been fitted
        on the Datalab's rows, in order, with the Datalab's labels (original or
        encoded); nothing is retrained.
    features : array-like, optional
        Model inputs, one per Datalab row; needed with an unfitted ``estimator``.
    scores : array-like of shape (n,), optional
        Precomputed signed scores (more negative = more harmful, as
        ``ToDCleanser.scores_``), instead of ``estimator``.
    pred_probs : array-like of shape (n, K), optional
        With ``scores``: out-of-sample probabilities (e.g. :func:`tod_pred_probs`),
        used for the predicted-label column and ``drop_fraction="auto"``.
    method : str, optional
        Cleansing method (``tod_cleanse.scores.METHODS``), as in :class:`ToDCleanser`;
        default ``"auto"``: the estimator family's ``default_method``.
    drop_fraction : float or "auto", default="auto"
        As in :class:`ToDCleanser`: ``"auto"`` flags as many rows as confident
        learning finds off the diagonal of the calibrated confident joint (of the
        full network's in-sample probabilities with ``estimator``, of ``pred_probs``
        with ``scores``); a float flags that fraction of rows (lowest scores).
    threshold : float, optional
        Flag every row whose signed score is below this value.
    eval_set : tuple (X_val, y_val), optional
        Validation data for ``method="eval_influence"``.
    instance_keys : array-like of shape (n,), optional
        With an unfitted ``estimator``: stable keys of the Datalab rows, passed to
        its ``fit``. ``info["key"]`` shows the keys the estimator was fitted with,
        as given (row positions by default).

    Notes
    -----
    Columns of ``lab.get_issues("tod_influence")``:

    * ``is_tod_influence_issue``: flagged rows.
    * ``tod_influence_score``: ``[0, 1]``, lower = more harmful, a rank-based map of
      the signed score (see :func:`tod_quality_scores`).
    * ``tod_influence_raw_score``: the signed score of ``method``.
    * ``tod_influence_predicted_label``: the out-of-sample (``oos_proba_``)
      prediction, as a class name; ``None`` with ``scores`` and no ``pred_probs``.

    The summary score is ``1 - (flagged rows) / n``, the convention of cleanlab's
    label health score.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from cleanlab import Datalab
    >>> from sklearn.datasets import load_iris
    >>> from tod_cleanse import ToDMLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> y_noisy = y.copy(); y_noisy[:5] = 2
    >>> lab = Datalab(pd.DataFrame({"label": y_noisy}), label_name="label", verbosity=0)
    >>> est = ToDMLPClassifier(hidden_layer_sizes=(64,), max_epochs=30, random_state=0,
    ...                        verbose=0)
    >>> lab.find_issues(issue_types={"tod_influence": {"estimator": est, "features": X}})
    >>> issues = lab.get_issues("tod_influence")
    >>> sorted(issues.columns)  # doctest: +NORMALIZE_WHITESPACE
    ['is_tod_influence_issue', 'tod_influence_predicted_label', 'tod_influence_raw_score',
     'tod_influence_score']
    >>> int(issues["is_tod_influence_issue"][:5].sum()) >= 4
    True
    """

    description: ClassVar[str] = (
        "Examples whose given label the model could not learn from the other examples, found "
        "by turn-over dropout (ToD; Kobayashi et al., SustaiNLP 2020) from one training run: "
        "every example trains only its own dropout sub-network, so the flipped sub-network "
        "never saw it and gives an out-of-sample prediction and an influence estimate.\n\n"
        "The raw score (tod_influence_raw_score) is signed, more negative = more harmful, from "
        "the chosen method (e.g. full_likelihood = log p_full(given label), oos_likelihood = "
        "log p_flipped(given label), self_influence "
        "= -I(z_i, z_i), eval_influence = influence on a validation set). "
        "tod_influence_score maps it onto [0, 1] by rank (0 = most harmful row). "
        "tod_influence_predicted_label is the out-of-sample predicted class."
    )
    issue_name: ClassVar[str] = ISSUE_NAME
    verbosity_levels: ClassVar[dict[int, list[str]]] = {
        0: [],
        1: ["method", "drop_rule"],
        2: ["training_runs", "score_mapping"],
        3: ["raw_score_summary"],
    }

    def __init__(
        self,
        datalab: Any,
        estimator: BaseToDClassifier | None = None,
        features: Any = None,
        scores: Any = None,
        pred_probs: Any = None,
        method: str | None = None,
        drop_fraction: float | str = "auto",
        threshold: float | None = None,
        eval_set: tuple[Any, Any] | None = None,
        instance_keys: Any = None,
        **_: Any,
    ) -> None:
        super().__init__(datalab)
        self._config = self._validate({
            "estimator": estimator, "features": features, "scores": scores,
            "pred_probs": pred_probs, "method": method, "drop_fraction": drop_fraction,
            "threshold": threshold, "eval_set": eval_set, "instance_keys": instance_keys,
        })

    # ---------------------------------------------------------------- checks
    def _validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """Check every argument against the Datalab; the stored configuration of the work."""
        try:
            lab = self.datalab
            if not getattr(lab, "has_labels", False):
                raise ValueError("the Datalab has no labels; pass label_name= to Datalab.")
            cfg: dict[str, Any] = {
                "labels": np.asarray(lab.labels, dtype=np.int64),
                "class_names": np.asarray(lab.class_names, dtype=object),
                "eval_set": args["eval_set"],
            }
            cfg["n"] = cfg["labels"].shape[0]
            if (args["estimator"] is None) == (args["scores"] is None):
                raise ValueError(
                    "pass exactly one of estimator= (a ToD estimator, with features= when it "
                    "is not fitted) or scores= (precomputed signed scores), got "
                    + ("both." if args["estimator"] is not None else "neither.")
                )
            if args["scores"] is not None:
                cfg.update(_scores_config(args, cfg["n"], len(cfg["class_names"])))
            else:
                cfg.update(_estimator_config(args, cfg["labels"], cfg["class_names"]))
            return cfg
        except (ValueError, TypeError) as exc:
            msg = f"issue type '{ISSUE_NAME}': {exc}"
            logger.error(msg)
            raise type(exc)(msg) from None

    # ------------------------------------------------------------------ work
    def find_issues(self, **kwargs: Any) -> None:
        """Score every row and fill ``issues``, ``summary`` and ``info``.

        Parameters
        ----------
        **kwargs
            The same arguments as the constructor (Datalab passes them to both);
            when given, they are validated again and replace the stored ones.
        """
        try:
            if any(k in kwargs for k in _ARGS):
                self._config = self._validate(
                    {**_ARGS, **{k: v for k, v in kwargs.items() if k in _ARGS}})
            self._fill(self._config, _find(self._config))
        except Exception as exc:  # Datalab swallows it: make it visible first.
            msg = f"issue type '{ISSUE_NAME}' failed: {type(exc).__name__}: {exc}"
            logger.error(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
            raise

    def _fill(self, cfg: dict[str, Any], found: _Found) -> None:
        """Write ``issues``, ``summary`` and ``info`` from the scores and flags."""
        n = cfg["n"]
        predicted = found.predicted
        self.issues = pd.DataFrame(
            {
                f"is_{self.issue_name}_issue": np.asarray(found.is_issue, dtype=bool),
                self.issue_score_key: tod_quality_scores(found.scores),
                f"{self.issue_name}_raw_score": found.scores,
                f"{self.issue_name}_predicted_label": (
                    pd.Series([None] * n, dtype=object) if predicted is None
                    else pd.Series(predicted, dtype=object)
                ),
            }
        )
        n_flagged = int(np.sum(found.is_issue))
        self.summary = self.make_summary(score=1.0 - n_flagged / max(n, 1))
        self.info = self.collect_info(cfg=cfg, found=found, n_flagged=n_flagged)
        logger.info("%s (method=%s) flags %d of %d rows", ISSUE_NAME, cfg["method"], n_flagged, n)

    def collect_info(self, *, cfg: dict[str, Any], found: _Found, n_flagged: int) -> dict[str, Any]:
        """The ``info`` dict: settings, counts, keys, labels and a summary of the raw scores."""
        if cfg["threshold"] is not None:
            drop_rule = f"threshold={cfg['threshold']!r}"
        elif cfg["drop_fraction"] == "auto":
            drop_rule = "auto (as many rows as are off the calibrated confident joint's diagonal)"
        else:
            drop_rule = f"drop_fraction={cfg['drop_fraction']!r}"
        scores, est = found.scores, found.estimator
        q = np.quantile(scores, [0.0, 0.05, 0.5, 0.95, 1.0]) if scores.size else [np.nan] * 5
        keys = np.arange(cfg["n"]) if est is None else np.asarray(est.instance_keys_)
        return {
            "method": cfg["method"],
            "drop_rule": drop_rule,
            f"num_{self.issue_name}_issues": n_flagged,
            "training_runs": found.training_runs,
            "score_mapping": "tod_influence_score = (rank - 1) / (n - 1), rank 1 = most "
                             "negative raw score (ties: average rank)",
            "raw_score_summary": dict(zip(("min", "q05", "median", "q95", "max"),
                                          (float(v) for v in q), strict=True)),
            "rank": found.rank.tolist(),
            "key": keys.tolist(),
            "given_label": cfg["class_names"][cfg["labels"]].tolist(),
            "predicted_label": None if found.predicted is None else list(found.predicted),
            "estimator": est,
        }


@dataclass
class _Found:
    """What the work found: signed scores, rank, flags, predicted classes, its cost."""

    scores: np.ndarray
    rank: np.ndarray
    is_issue: np.ndarray
    predicted: np.ndarray | None
    training_runs: int
    estimator: BaseToDClassifier | None


def _scores_config(args: dict[str, Any], n: int, k: int) -> dict[str, Any]:
    """Configuration of the ``scores=`` path (precomputed signed scores)."""
    if args["eval_set"] is not None:
        raise ValueError("eval_set= is only used with estimator=, not scores=.")
    if args["instance_keys"] is not None:
        raise ValueError("instance_keys= is only used with an unfitted estimator=, not scores=.")
    if args["features"] is not None:
        warnings.warn(f"{ISSUE_NAME}: features= is ignored when scores= is given.",
                      UserWarning, stacklevel=2)
    drop = parse_drop_fraction(args["drop_fraction"])
    threshold = check_threshold(args["threshold"])
    scores = _check_scores(args["scores"], n)
    pred_probs = None if args["pred_probs"] is None else _check_proba(args["pred_probs"], n, k)
    if pred_probs is None and threshold is None and drop == "auto":
        raise ValueError(
            "drop_fraction='auto' needs pred_probs= (out-of-sample probabilities) "
            "with scores=; pass pred_probs=, drop_fraction=<float> or threshold=."
        )
    return {"scores": scores, "pred_probs": pred_probs,
            "method": args["method"] or "precomputed", "drop_fraction": drop,
            "threshold": threshold}


def _estimator_config(
    args: dict[str, Any], labels: np.ndarray, class_names: np.ndarray
) -> dict[str, Any]:
    """Configuration of the ``estimator=`` path (fitted, or unfitted with ``features=``)."""
    estimator = check_tod_estimator(args["estimator"])
    method = args["method"] or AUTO_METHOD
    if args["pred_probs"] is not None:
        raise ValueError("pred_probs= is only used with scores=, not estimator=.")
    method, drop, threshold = check_cleansing_params(method, args["drop_fraction"],
                                                     args["threshold"], args["eval_set"])
    method = resolve_method(method, estimator)
    cfg = {"estimator": estimator, "method": method, "drop_fraction": drop,
           "threshold": threshold}
    if is_fitted(estimator):
        if args["instance_keys"] is not None:
            raise ValueError("instance_keys= is only used with an unfitted estimator; a fitted "
                             "one keeps the keys it was fitted with (instance_keys_).")
        return {**cfg, "fitted": True,
                "encoded": _check_fitted_matches(estimator, labels, class_names)}
    features, n = args["features"], labels.shape[0]
    if features is None:
        raise ValueError(
            "an unfitted estimator needs features= (the model inputs of every "
            "Datalab row) to be trained on."
        )
    try:
        n_feat = len(features)
    except TypeError:
        raise TypeError(
            f"features must be array-like with one entry per row, got {type(features).__name__}."
        ) from None
    if n_feat != n:
        raise ValueError(f"features has {n_feat} rows but the Datalab has {n}.")
    return {**cfg, "fitted": False, "features": features, "instance_keys": args["instance_keys"]}


def _check_fitted_matches(
    est: BaseToDClassifier, labels: np.ndarray, class_names: np.ndarray
) -> bool:
    """Check a fitted estimator against the Datalab; True if fitted on encoded labels."""
    if not hasattr(est, "oos_proba_"):
        raise ValueError("estimator is fitted but has no oos_proba_; refit it with ToD.")
    n_train = est.y_train_.shape[0]
    if n_train != labels.shape[0]:
        raise ValueError(
            f"estimator was fitted on {n_train} rows but the Datalab has {labels.shape[0]}; "
            "fit it on the Datalab's rows in order, or pass it unfitted with features=."
        )
    given = np.asarray(est.classes_[est.y_train_], dtype=object)
    original = class_names[labels]
    if np.array_equal(given, original):
        return False
    if np.array_equal(given, labels.astype(object)):
        return True
    differ = int(np.sum(given != original))
    raise ValueError(
        f"estimator was fitted on other labels than the Datalab's ({differ} of "
        f"{labels.shape[0]} rows differ); fit it on the Datalab's label column, in row "
        "order, or pass it unfitted with features=."
    )


def _check_scores(scores: Any, n: int, name: str = "scores") -> np.ndarray:
    arr = np.asarray(scores)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}.")
    arr = arr.astype(np.float64)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) (one per example), got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return arr


def _check_proba(proba: Any, n: int, k: int, name: str = "pred_probs") -> np.ndarray:
    arr = np.asarray(proba)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}.")
    arr = arr.astype(np.float64)
    if arr.ndim != 2 or arr.shape != (n, k):
        raise ValueError(
            f"{name} must have shape ({n}, {k}) (examples x classes), got {arr.shape}."
        )
    if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1 + 1e-6:
        raise ValueError(f"{name} must hold probabilities in [0, 1].")
    return arr


# ------------------------------------------------------------------------ work
def _find(cfg: dict[str, Any]) -> _Found:
    """Scores and flags by the configured path; trains only an unfitted estimator."""
    labels, class_names = cfg["labels"], cfg["class_names"]
    if "scores" in cfg:
        proba = cfg["pred_probs"]
        rank, is_issue = select_issues(cfg["scores"], labels, proba,
                                       drop_fraction=cfg["drop_fraction"],
                                       threshold=cfg["threshold"])
        predicted = None if proba is None else class_names[np.argmax(proba, axis=1)]
        return _Found(cfg["scores"], rank, is_issue, predicted, 0, None)
    if cfg["fitted"]:
        est = cfg["estimator"]
        scores = fitted_scores(est, cfg["method"], cfg["eval_set"])
        rank, is_issue = select_issues(scores, est.y_train_, **auto_count_views(est),
                                       drop_fraction=cfg["drop_fraction"],
                                       threshold=cfg["threshold"])
        return _Found(scores, rank, is_issue, _predicted_names(est, class_names, cfg["encoded"]),
                      0, est)
    cleanser = ToDCleanser(
        estimator=cfg["estimator"], method=cfg["method"], drop_fraction=cfg["drop_fraction"],
        threshold=cfg["threshold"], eval_set=cfg["eval_set"],
    ).fit(cfg["features"], np.asarray(class_names[labels].tolist()),
          instance_keys=cfg["instance_keys"])
    est = cleanser.estimator_
    return _Found(cleanser.scores_, cleanser.issues_["rank"].to_numpy(),
                  cleanser.issues_["is_issue"].to_numpy(),
                  _predicted_names(est, class_names, False), 1, est)


def _predicted_names(est: BaseToDClassifier, class_names: np.ndarray, encoded: bool) -> np.ndarray:
    """Out-of-sample predicted class; as a class name when fitted on encoded labels."""
    pred = est.classes_[np.argmax(est.oos_proba_, axis=1)]
    if encoded:
        return class_names[np.asarray(pred, dtype=np.int64)]
    return np.asarray(pred, dtype=object)


# ---------------------------------------------------------------- registration
def _is_this_manager(cls: type) -> bool:
    """This class, or the same class from a second import of this module (a reload, or
    pytest importing the file under another name for its doctests)."""
    return cls is ToDInfluenceIssueManager or (
        cls.__qualname__ == ToDInfluenceIssueManager.__qualname__
        and cls.__module__.endswith("adapters.cleanlab.datalab")
    )


def register_issue_manager() -> type[IssueManager]:
    """Register the ``"tod_influence"`` issue type for classification; idempotent.

    Registration goes through cleanlab's public
    ``cleanlab.datalab.internal.issue_manager_factory.register``. When the issue
    type is already registered to this manager (an earlier call, a reload of the
    module), nothing happens and cleanlab prints no "Overwriting" warning. Another
    class registered under the same name is replaced, with a logged warning
    (cleanlab prints its own too).

    Returns
    -------
    type
        The issue manager class registered for ``"tod_influence"``.

    Examples
    --------
    >>> register_issue_manager().issue_name
    'tod_influence'
    """
    task = Task.CLASSIFICATION
    if ISSUE_NAME in issue_manager_factory.list_possible_issue_types(task):
        # read-only look-up: which class holds the name (cleanlab has no getter)
        current = issue_manager_factory.REGISTRY[task][ISSUE_NAME]
        if _is_this_manager(current):
            return current
        logger.warning("replacing the issue manager %r registered as %r", current, ISSUE_NAME)
    return issue_manager_factory.register(ToDInfluenceIssueManager, task="classification")
