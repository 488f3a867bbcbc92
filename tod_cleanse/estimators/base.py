"""The one base class of every ToD estimator: training loop, scoring, sklearn plumbing.

Subclasses (MLP, BERT, VGG) only say

* how to turn ``X`` into model inputs (:meth:`BaseToDClassifier._validate_X` and
  :meth:`BaseToDClassifier._batch`),
* how to build the network and where turn-over dropout goes
  (:meth:`BaseToDClassifier._build_module`, returning a :class:`ToDNetwork`),
* optionally, how to augment a training batch (:meth:`BaseToDClassifier._augment`).

Everything else lives once, here and in the small modules it composes:
label encoding (``_labels``), the training loop and mixed precision
(``_training``), the network container and device resolution (``_network``),
instance keys (:mod:`tod_cleanse.keys`), parameter constraints (below),
influence scoring (here) and persistence (``persistence``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from torch.nn import functional as F
from tqdm.auto import tqdm

from .._constraints import StrOptions, int_interval, real_interval
from ..diagnostics import fit_temperature, softmax_temperature, warn_if_unreliable
from ..folds import key_fold, out_of_fold_logits
from ..influence import (
    gradient_factors,
    iter_gradient_influence_blocks,
    iter_influence_blocks,
    resolve_estimate,
)
from ..keys import check_instance_keys
from ..layers import tod_context, tod_modules
from ..scores import DEFAULT_METHOD
from ._distributed import ddp_seed
from ._labels import LabelEncodingMixin
from ._network import ToDNetwork, repeat_rows, resolve_device
from ._training import TrainingLoopMixin
from .persistence import PersistenceMixin

logger = logging.getLogger(__name__)

__all__ = ["BaseToDClassifier", "ToDNetwork", "resolve_device"]


class BaseToDClassifier(TrainingLoopMixin, LabelEncodingMixin, PersistenceMixin, ClassifierMixin,
                        BaseEstimator):
    """Base class of the turn-over dropout classifiers. Not used directly.

    Every training instance ``z_i`` trains only its own fixed dropout sub-network
    ``m_i``; the flipped sub-network ``1 - m_i`` never sees it, so

        I(z_t, z_i) = L(z_t; theta * (1 - m_i)) - L(z_t; theta * m_i)

    estimates the influence of ``z_i`` on a target ``z_t`` from one training run and
    two forward passes [1]_. Positive: ``z_i`` helped the target; negative: it hurt.

    Fitted attributes
    -----------------
    classes_ : ndarray
        Class labels, in the column order of :meth:`predict_proba`.
    module_ : ToDNetwork
        The trained network.
    optimizer_ : torch.optim.Optimizer
    device_ : torch.device
    train_keys_ : ndarray of int64, shape (n_train,)
        The (hashed) instance keys the masks were drawn from.
    instance_keys_ : ndarray, shape (n_train,)
        The instance keys as the user gave them, any dtype (row positions by
        default): the one source of keys for ``ToDCleanser.issues_``,
        :meth:`explain`, reports and saved models (see :mod:`tod_cleanse.keys`).
    self_influence_ : ndarray, shape (n_train,)
        ``I(z_i, z_i)``: large positive values mean the model had to memorise
        ``z_i``.
    oos_proba_ : ndarray, shape (n_train, n_classes)
        Out-of-sample probabilities: the flipped sub-network on each training row,
        a one-run stand-in for cross-validated ``pred_probs``.
    seen_proba_ : ndarray, shape (n_train, n_classes)
        The instance's own sub-network on each training row.
    train_proba_ : ndarray, shape (n_train, n_classes)
        The full network on each training row (in-sample).
    y_train_ : ndarray of int, shape (n_train,)
        Encoded training labels (indices into ``classes_``).
    history_ : list of dict
        Mean training loss per epoch.

    References
    ----------
    .. [1] S. Kobayashi, S. Yokoi, J. Suzuki, K. Inui. *Efficient Estimation of
       Influence of a Training Instance*. SustaiNLP 2020. arXiv:2012.04207.
    """

    #: The cleansing score ``method="auto"`` names for this family
    #: (:func:`tod_cleanse.scores.resolve_method`): the one the benchmark ranks best
    #: for it (README, "Benchmarks"; ``examples/benchmarks/score_study.py``).
    default_method: str = DEFAULT_METHOD

    #: Constraints of the constructor parameters every family shares (sklearn's
    #: ``_parameter_constraints`` machinery, checked at the start of :meth:`fit`).
    #: A family extends it: ``{**BaseToDClassifier._parameter_constraints, ...}``.
    _parameter_constraints: dict = {
        "p": [real_interval(0, 1, closed="neither")],
        "inner_p": [real_interval(0, 1, closed="left")],
        "mask_seed": [int_interval(None, None, closed="neither")],
        "mask_groups": [int_interval(2, None, closed="left"), None],
        "turn_over": ["boolean"],
        "max_epochs": [int_interval(1, None, closed="left")],
        "batch_size": [int_interval(1, None, closed="left")],
        "lr": [real_interval(0, None, closed="neither")],
        "optimizer": [StrOptions({"adam", "adamw", "sgd"})],
        "weight_decay": [real_interval(0, None, closed="left")],
        "lr_schedule": [StrOptions({"constant", "linear"}), None],
        "warmup_fraction": [real_interval(0, 1, closed="both")],
        "grad_clip": [real_interval(0, None, closed="neither"), None],
        "score_batch_size": [int_interval(1, None, closed="left"), None],
        "amp": ["boolean", StrOptions({"auto"}), None],
        "device": [str, torch.device, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # ----------------------------------------------------------------- hooks
    def _validate_X(self, X: Any, *, reset: bool) -> Any:  # pragma: no cover - abstract
        """Check ``X`` and turn it into this family's input container."""
        raise NotImplementedError

    def _n_rows(self, inputs: Any) -> int:
        if isinstance(inputs, dict):
            return len(next(iter(inputs.values())))
        return len(inputs)

    def _batch(self, inputs: Any, idx: np.ndarray) -> Any:
        """Rows ``idx`` of ``inputs`` as model input on ``self.device_``."""
        return torch.as_tensor(inputs[idx]).to(self.device_, non_blocking=True)

    def _build_module(self, n_classes: int) -> ToDNetwork:  # pragma: no cover - abstract
        raise NotImplementedError

    def _augment(self, xb: Any) -> Any:
        """Training-time augmentation of a batch (keys are untouched). Identity here."""
        return xb

    def _default_lr_schedule(self) -> str:
        return "constant"

    # ------------------------------------------------------------ validation
    def _check_params(self) -> None:
        """Checks that ``_parameter_constraints`` cannot express (after them).

        ``device`` is resolved here, so that a bad one is a ``ValueError`` naming
        ``device`` before any data is touched. Families may extend it.
        """
        resolve_device(self.device)

    # -------------------------------------------------------------- training
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, instance_keys: Any = None) -> BaseToDClassifier:
        """Train with turn-over dropout, then score every training row.

        Parameters
        ----------
        X : array-like
            Training inputs (type depends on the subclass).
        y : array-like of shape (n_samples,)
            Labels of any type (ints, strings, pandas categoricals).
        instance_keys : array-like of shape (n_samples,), optional
            Stable, unique per-row keys (integers or strings) from which the masks
            are drawn. Default: row positions ``0..n-1``.

        Returns
        -------
        self
        """
        self._check_params()
        inputs = self._validate_X(X, reset=True)
        n = self._n_rows(inputs)
        y_enc = self._encode_y(y, n, fitting=True)
        raw_keys, keys = check_instance_keys(instance_keys, n)
        seed = ddp_seed(int(check_random_state(self.random_state).randint(2**31 - 1)))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.initialize()
            self._fit_loop(inputs, y_enc, keys, np.random.default_rng(seed))
        self.train_keys_ = keys
        self.instance_keys_ = raw_keys
        self.y_train_ = y_enc
        self._score_training_rows(inputs, y_enc, keys)
        if self.turn_over:
            warn_if_unreliable(self)  # a FitReliabilityWarning per reason, if any
        return self

    # --------------------------------------------------------------- scoring
    def _score_batch_size(self) -> int:
        return int(self.score_batch_size or 4096)

    @torch.no_grad()
    def _trunk(self, xb: Any) -> Any:
        return self.module_.trunk(xb)

    @torch.no_grad()
    def _head_logits(self, h: Any, keys: torch.Tensor | None, mode: str) -> torch.Tensor:
        with tod_context(keys, mode, cycle=True):
            return self.module_.head(h).float()

    def _iter_rows(self, n: int, desc: str, batch_size: int | None = None) -> Iterator[np.ndarray]:
        bs = batch_size or self._score_batch_size()
        starts = range(0, n, bs)
        for start in tqdm(starts, desc=desc, unit="batch", disable=not self.verbose or n <= bs,
                          leave=False):
            yield np.arange(start, min(n, start + bs))

    @torch.no_grad()
    def _score_training_rows(self, inputs: Any, y_enc: np.ndarray, keys: np.ndarray) -> None:
        """Self-influence and the seen / flipped / full probabilities of every training row."""
        self.module_.eval()
        n = y_enc.shape[0]
        k = len(self.classes_)
        seen = np.empty((n, k), dtype=np.float32)
        flipped = np.empty((n, k), dtype=np.float32)  # logits until calibrated below
        full = np.empty((n, k), dtype=np.float32)
        selfinf = np.empty(n, dtype=np.float64)
        for idx in self._iter_rows(n, "scoring training rows", self._predict_batch_size()):
            h = self._trunk(self._batch(inputs, idx))
            kb = torch.as_tensor(keys[idx], device=self.device_)
            yb = torch.as_tensor(y_enc[idx], device=self.device_)
            full[idx] = torch.softmax(self._head_logits(h, None, "full"), 1).cpu().numpy()
            if self.turn_over:
                ls = self._head_logits(h, kb, "seen")
                lf = self._head_logits(h, kb, "flipped")
                seen[idx] = torch.softmax(ls, 1).cpu().numpy()
                flipped[idx] = self._out_of_fold_logits(inputs, idx, kb, lf, h).cpu().numpy()
                selfinf[idx] = (F.cross_entropy(lf, yb, reduction="none")
                                - F.cross_entropy(ls, yb, reduction="none")).cpu().numpy()
        self.train_proba_ = full
        if self.turn_over:
            self.seen_proba_ = seen
            # One temperature fitted on the flipped sub-network's own out-of-sample rows
            # (issue 11: cleanlab's thresholds need calibrated pred_probs); 1.0 when
            # the class attribute ``_calibrate_oos`` is False.
            self.oos_temperature_ = (fit_temperature(flipped, y_enc)
                                     if getattr(self, "_calibrate_oos", True) else 1.0)
            self.oos_proba_ = softmax_temperature(flipped, self.oos_temperature_).astype(
                np.float32)
            self.self_influence_ = selfinf
        self.module_.train(False)

    @torch.no_grad()
    def _out_of_fold_logits(self, inputs: Any, idx: np.ndarray, keys: torch.Tensor,
                            flipped: torch.Tensor, h: Any = None) -> torch.Tensor:
        """The out-of-sample logits of training rows ``idx``: from the member of their
        fold when the network has out-of-fold members (:mod:`tod_cleanse.folds`),
        else the flipped sub-network's ``flipped``. ``h``: the rows' trunk output."""
        members = getattr(self.module_, "members", None)
        if members is None:
            return flipped
        folds = key_fold(keys, members.n_folds, int(self.mask_seed))
        logits = self.module_.member_logits(self._batch(inputs, idx), h)
        return out_of_fold_logits(logits.float(), folds)

    def _predict_batch_size(self) -> int:
        return max(int(self.batch_size), 256)

    @torch.no_grad()
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of the full network (every unit, standard dropout scaling).

        Parameters
        ----------
        X : array-like

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        inputs = self._validate_X(X, reset=False)
        n = self._n_rows(inputs)
        self.module_.eval()
        out = np.empty((n, len(self.classes_)), dtype=np.float64)
        for idx in self._iter_rows(n, "predicting", self._predict_batch_size()):
            logits = self._head_logits(self._trunk(self._batch(inputs, idx)), None, "full")
            out[idx] = torch.softmax(logits.double(), 1).cpu().numpy()
        return out

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of the full network.

        Parameters
        ----------
        X : array-like

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)  # first: it raises NotFittedError before fit
        return self.classes_[np.argmax(proba, axis=1)]

    def _require_tod(self, what: str) -> None:
        check_is_fitted(self)
        if not self.turn_over:
            raise ValueError(f"{what} needs turn-over dropout; this estimator has turn_over=False.")

    def iter_influence(self, X_t: Any, y_t: Any, *, estimate: str = "auto",
                       train_set: tuple[Any, Any] | None = None
                       ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(target_rows, block)`` with ``block[a, i] = I(z_t[a], z_i)``.

        Same values as :meth:`score_influence`, one block of targets at a time,
        so that a caller can reduce them (sum, top-k) in bounded memory.
        """
        self._require_tod("score_influence")
        estimate = resolve_estimate(estimate, train_set)
        inputs = self._validate_X(X_t, reset=False)
        n_t = self._n_rows(inputs)
        y_enc = self._encode_y(y_t, n_t, fitting=False, name="y_t")
        self.module_.eval()
        if estimate == "gradient":
            yield from self._iter_gradient_influence(inputs, y_enc, train_set)
            return
        # Every block of targets meets the same training masks: hash them once.
        tod_layers = tod_modules(self.module_)
        for layer in tod_layers:
            layer.cache_masks(torch.as_tensor(self.train_keys_, device=self.device_))
        try:
            yield from iter_influence_blocks(
                trunk=lambda idx: self._trunk(self._batch(inputs, idx)),
                head=self._head_logits,
                repeat=repeat_rows,
                y_targets=y_enc,
                train_keys=self.train_keys_,
                pairs_per_batch=self._score_batch_size(),
                device=self.device_,
                verbose=bool(self.verbose),
            )
        finally:
            for layer in tod_layers:
                layer.cache_masks(None)

    def _iter_gradient_influence(self, inputs: Any, y_enc: np.ndarray,
                                 train_set: tuple[Any, Any] | None
                                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Blocks of the ``estimate="gradient"`` influence (see :mod:`tod_cleanse.influence`)."""
        n_fit = self.train_keys_.shape[0]
        if train_set is None or len(train_set) != 2:
            raise ValueError("estimate='gradient' needs train_set=(X_train, y_train), the "
                             "rows the estimator was fitted on, in the same order.")
        train = self._validate_X(train_set[0], reset=False)
        n = self._n_rows(train)
        if n != n_fit:
            raise ValueError(f"train_set has {n} rows but the estimator was fitted on {n_fit}.")
        y_train = self._encode_y(train_set[1], n, fitting=False, name="train_set y")

        def factors(data: Any, labels: np.ndarray) -> Any:
            def run(idx: np.ndarray) -> Any:
                xb = self._batch(data, idx)

                def forward() -> torch.Tensor:
                    with tod_context(None, "full"):
                        return self.module_.head(self.module_.trunk(xb))
                yb = torch.as_tensor(labels[idx], device=self.device_)
                return gradient_factors(self.module_, forward, yb)
            return run

        # Both sides in the full network (issue 12 step 4: the row's seen sub-network
        # scored 0.01-0.025 lower LDS on all 6 cells; results/influence/README.md).
        yield from iter_gradient_influence_blocks(
            factors(inputs, y_enc), factors(train, y_train),
            n_targets=y_enc.shape[0], n_train=n, pairs_per_batch=self._score_batch_size(),
            verbose=bool(self.verbose))

    def score_influence(self, X_t: Any, y_t: Any, reduce: str | None = None, *,
                        estimate: str = "auto",
                        train_set: tuple[Any, Any] | None = None) -> np.ndarray:
        """Influence of every training instance on every target.

        ``estimate="exact"``: ``I(z_t, z_i) = L(z_t; flipped_i) - L(z_t; seen_i)``
        with ``L`` the cross-entropy of the target's label ``y_t``, the paper's
        estimate; ``diag(score_influence(X_train, y_train)) == self_influence_``.
        ``estimate="gradient"``: the cosine between the first-layer loss gradients
        of the target and of training row ``i``, both in the full network (see
        :mod:`tod_cleanse.influence`); it needs ``train_set``. It tracks retraining
        far better than ``"exact"`` on every cell measured (LDS 0.26-0.71 against
        0.04-0.08, above TracIn with 4 checkpoints and TRAK-1;
        ``examples/benchmarks/results/influence/``), on another scale (a cosine,
        not a loss difference). ``estimate="auto"`` (default): ``"gradient"`` when
        ``train_set`` is given, else ``"exact"``
        (:func:`~tod_cleanse.influence.resolve_estimate`): pass the training rows
        for the faithful estimate. Either way,
        positive: training row ``i`` helped target ``t`` (removing it would raise
        the target's loss); negative: it hurt.

        The (target, training mask) pairs are evaluated in batches of
        ``score_batch_size`` pairs, vectorised over training masks; the
        mask-independent trunk runs once per target.

        Parameters
        ----------
        X_t : array-like
            Targets.
        y_t : array-like of shape (n_targets,)
            Target labels (must be among ``classes_``).
        reduce : {None, "sum", "mean"}, default=None
            ``None`` returns the full matrix; ``"sum"``/``"mean"`` reduce over the
            targets in bounded memory and return one value per training row.
        estimate : {"auto", "exact", "gradient"}, default="auto"
            Which estimate (see above).
        train_set : tuple (X_train, y_train), optional
            The training rows, in fitting order; required by ``"gradient"``, and
            selects it under ``"auto"``.

        Returns
        -------
        ndarray of shape (n_targets, n_train), or (n_train,) when reduced
        """
        if reduce not in (None, "sum", "mean"):
            raise ValueError(f"reduce must be None, 'sum' or 'mean', got {reduce!r}.")
        n_train = self.train_keys_.shape[0] if hasattr(self, "train_keys_") else 0
        blocks = self.iter_influence(X_t, y_t, estimate=estimate, train_set=train_set)
        if reduce is None:
            parts = [block for _, block in blocks]
            return np.concatenate(parts, axis=0) if parts else np.empty((0, n_train))
        total = np.zeros(n_train, dtype=np.float64)
        count = 0
        for rows, block in blocks:
            total += block.sum(axis=0)
            count += rows.shape[0]
        return total / max(count, 1) if reduce == "mean" else total

    def explain(self, X_t: Any, y_t: Any = None, k: int = 5,
                label_filter: Any = None, *, estimate: str = "auto",
                train_set: tuple[Any, Any] | None = None) -> Any:
        """The top-``k`` helpful and harmful training rows of every target.

        See :func:`tod_cleanse.explain.explain` (this method delegates to it).

        Parameters
        ----------
        X_t : array-like
            Targets.
        y_t : array-like of shape (n_targets,), optional
            True labels; influence is taken w.r.t. them, else w.r.t. the
            predicted labels.
        k : int, default=5
        label_filter : None, "predicted", "true", a class label or a list of them
        estimate : {"auto", "exact", "gradient"}, default="auto"
        train_set : tuple ``(X_train, y_train)``, optional (needed by ``"gradient"``;
            selects it under ``"auto"``)

        Returns
        -------
        pandas.DataFrame
        """
        from ..explain import explain

        return explain(self, X_t, y_t, k=k, label_filter=label_filter, estimate=estimate,
                       train_set=train_set)

    # --------------------------------------------------------------- pickle
    def _rebuild_module(self) -> ToDNetwork:
        """A network of the fitted shape, to receive saved weights (see ``persistence``).

        Default: :meth:`_build_module`. A family whose builder reads external
        files (pretrained weights) overrides it to build from fitted metadata.
        """
        return self._build_module(len(self.classes_))
