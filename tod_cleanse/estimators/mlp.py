"""ToDMLPClassifier: a multi-layer perceptron for numeric features."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils.validation import validate_data
from torch import nn

from .._constraints import StrOptions, int_interval
from ..folds import OutOfFoldMembers, input_projection
from ..layers import TurnOverDropout, tod_modules
from ._docs import fill_shared_parameters
from .base import BaseToDClassifier, ToDNetwork

__all__ = ["ToDMLPClassifier"]

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


@fill_shared_parameters
class ToDMLPClassifier(BaseToDClassifier):
    """MLP classifier trained with turn-over dropout, for numeric features.

    Architecture: ``Linear -> act -> ToD -> Linear -> act -> ToD -> ... -> Linear``.
    Every weight matrix has its input or its output masked by an instance mask
    and the output layer has no bias, so a gradient step on instance ``z_i``
    leaves every parameter of the flipped sub-network ``1 - m_i`` untouched
    (exact separation). Momentum and weight decay of the optimiser do move
    parameters with zero gradient; with ``optimizer="adam"`` and
    ``weight_decay=0`` a fresh optimiser moves nothing else.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(512,)
        Width of each hidden layer; a ToD layer follows each one. The defaults
        (one hidden layer of 512, ``p=0.8``, no inner dropout) gave the best
        self-influence and default-score AP together of the ToD networks measured
        (issue 11, ``examples/benchmarks/results/oos/``): the pre-issue
        ``(256, 256)``, ``p=0.5`` ranks by ``full_likelihood`` about as well but its
        self-influence trails 5-fold CV on Fashion-MNIST, and inner dropout 0.3
        lowered the default score on Fashion-MNIST 10k.
    activation : {"relu", "gelu", "tanh"}, default="relu"
        Activation after each hidden layer.
    standardize : bool, default=True
        Standardise features with the training mean and standard deviation.
    oos_folds : int or None, default=5
        Fold-structured turn-over dropout for the out-of-sample view
        (:mod:`tod_cleanse.folds`): each instance key is hashed into one of
        ``oos_folds`` folds, and the network carries one small member MLP per fold
        that every fold but its own trains, in the same run and on the same batches.
        ``oos_proba_`` then comes from the member of the row's fold -- a whole
        network that never saw the row, as in ``oos_folds``-fold cross-validation --
        instead of the per-instance flipped sub-network, whose clean-row accuracy
        trailed 5-fold CV by 0.02-0.07 (issue 11). Influence, self-influence,
        ``train_proba_`` and predictions stay those of the per-instance ToD network.
        ``None``: no members (cheaper: a fit with the members costs 1.4-2.4x one
        without them on the benchmark cells, ``examples/benchmarks/results/oos/cost.md``).
    oos_width : int, default=128
        Hidden units of each out-of-fold member. Inputs wider than
        :data:`~tod_cleanse.folds.MEMBER_INPUT_DIM` reach the members through a
        fixed, label-free PCA map (fitted attribute ``oos_projection_``).
    %(shared_parameters)s

    Attributes
    ----------
    classes_, n_features_in_, feature_names_in_, module_, optimizer_, device_,
    train_keys_, y_train_, self_influence_, oos_proba_, seen_proba_, train_proba_,
    history_ : see :class:`~tod_cleanse.estimators.base.BaseToDClassifier`.
    mean_, scale_ : ndarray of shape (n_features,)
        Standardisation statistics.

    References
    ----------
    .. [1] S. Kobayashi, S. Yokoi, J. Suzuki, K. Inui. *Efficient Estimation of
       Influence of a Training Instance*. SustaiNLP 2020. arXiv:2012.04207.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from tod_cleanse import ToDMLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = ToDMLPClassifier(hidden_layer_sizes=(32,), max_epochs=30, lr=0.01,
    ...                        random_state=0, verbose=0).fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
    >>> clf.self_influence_.shape, clf.oos_proba_.shape
    ((150,), (150, 3))
    >>> clf.score_influence(X[:2], y[:2]).shape
    (2, 150)
    """

    _parameter_constraints: dict = {
        **BaseToDClassifier._parameter_constraints,
        "hidden_layer_sizes": ["array-like", int_interval(1, None, closed="left")],
        "activation": [StrOptions(set(_ACTIVATIONS))],
        "standardize": ["boolean"],
        "oos_folds": [None, int_interval(2, None, closed="left")],
        "oos_width": [int_interval(1, None, closed="left")],
    }

    def __init__(
        self,
        *,
        hidden_layer_sizes: tuple[int, ...] = (512,),
        activation: str = "relu",
        standardize: bool = True,
        oos_folds: int | None = 5,
        oos_width: int = 128,
        p: float = 0.8,
        inner_p: float = 0.0,
        mask_seed: int = 0,
        mask_groups: int | None = None,
        turn_over: bool = True,
        max_epochs: int = 20,
        batch_size: int = 64,
        lr: float = 1e-3,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        lr_schedule: str = "constant",
        warmup_fraction: float = 0.0,
        grad_clip: float | None = None,
        score_batch_size: int = 4096,
        amp: bool | str = "auto",
        device: str = "auto",
        random_state: int | None = None,
        verbose: int = 1,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.standardize = standardize
        self.oos_folds = oos_folds
        self.oos_width = oos_width
        self.p = p
        self.inner_p = inner_p
        self.mask_seed = mask_seed
        self.mask_groups = mask_groups
        self.turn_over = turn_over
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.warmup_fraction = warmup_fraction
        self.grad_clip = grad_clip
        self.score_batch_size = score_batch_size
        self.amp = amp
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):  # noqa: D105 - sparse input is densified
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _validate_X(self, X: Any, *, reset: bool) -> np.ndarray:
        try:
            X = validate_data(self, X, reset=reset, dtype=np.float32,
                              accept_sparse=("csr", "csc", "coo"))
        except ValueError as exc:
            if "could not convert" in str(exc):
                raise ValueError(f"X must hold numbers only: {exc}") from None
            raise
        if sp.issparse(X):  # densified: the network takes dense batches
            X = X.toarray()
        if reset:
            if self.standardize:
                self.mean_ = X.mean(axis=0, dtype=np.float64).astype(np.float32)
                std = X.std(axis=0, dtype=np.float64).astype(np.float32)
                self.scale_ = np.where(std > 1e-12, std, 1.0).astype(np.float32)
            else:
                self.mean_ = np.zeros(X.shape[1], dtype=np.float32)
                self.scale_ = np.ones(X.shape[1], dtype=np.float32)
        X = np.ascontiguousarray((X - self.mean_) / self.scale_, dtype=np.float32)
        if reset:  # the out-of-fold members' fixed, label-free input map (wide inputs)
            self.oos_projection_ = (input_projection(X) if self.turn_over and self.oos_folds
                                    else None)
        return X

    def _fit_loop(self, inputs: Any, y_enc: np.ndarray, keys: np.ndarray,
                  rng: np.random.Generator) -> None:
        members = getattr(self.module_, "members", None)
        # The members' projected inputs, once per fit (batches are rows of `inputs` as
        # they are, unless a subclass augments them).
        cache = (members is not None and type(self)._augment is BaseToDClassifier._augment
                 and getattr(self.module_, "members_input", "input") == "input")
        if cache:
            members.cache_inputs(torch.as_tensor(keys, device=self.device_), inputs)
        try:
            super()._fit_loop(inputs, y_enc, keys, rng)
        finally:
            if cache:
                members.cache_inputs(None)

    #: Training leaves the ToD layers' mask tables for scoring the training rows (their
    #: seen and flipped masks are then read, not hashed twice more); cleared after it.
    _mask_cache_for_scoring = True

    def _score_training_rows(self, inputs: Any, y_enc: np.ndarray, keys: np.ndarray) -> None:
        try:
            super()._score_training_rows(inputs, y_enc, keys)
        finally:
            for layer in tod_modules(self.module_):
                layer.cache_masks(None)

    def _build_module(self, n_classes: int) -> ToDNetwork:
        sizes = tuple(int(h) for h in np.atleast_1d(self.hidden_layer_sizes))
        if not sizes or min(sizes) < 1:
            raise ValueError(
                "hidden_layer_sizes needs at least one positive width (ToD sits after "
                f"each hidden layer), got {self.hidden_layer_sizes!r}."
            )
        act = _ACTIVATIONS[self.activation]
        trunk = nn.Sequential(nn.Linear(self.n_features_in_, sizes[0]), act())
        layers: list[nn.Module] = []
        for i, width in enumerate(sizes):
            layers.append(
                TurnOverDropout(
                    p=self.p,
                    layer_seed=i,
                    seed=self.mask_seed,
                    n_groups=self.mask_groups,
                    inner_p=self.inner_p,
                )
            )
            if i + 1 < len(sizes):
                layers += [nn.Linear(width, sizes[i + 1]), act()]
        # No bias in the output layer: a bias is shared by every sub-network and
        # would break the exact separation of seen and flipped parameters.
        layers.append(nn.Linear(sizes[-1], n_classes, bias=False))
        members = None
        if self.turn_over and self.oos_folds:
            members = OutOfFoldMembers(self.n_features_in_, int(self.oos_folds),
                                       int(self.oos_width), n_classes,
                                       projection=getattr(self, "oos_projection_", None),
                                       seed=torch.initial_seed() % 2**31)
        return ToDNetwork(trunk, nn.Sequential(*layers), members)
