"""The one base class of every ToD estimator: training loop, scoring, sklearn plumbing.

Subclasses (MLP, BERT, VGG) only say

* how to turn ``X`` into model inputs (:meth:`BaseToDClassifier._validate_X` and
  :meth:`BaseToDClassifier._batch`),
* how to build the network and where turn-over dropout goes
  (:meth:`BaseToDClassifier._build_module`, returning a :class:`ToDNetwork`),
* optionally, how to augment a training batch (:meth:`BaseToDClassifier._augment`).

Everything else (label encoding, instance keys, the training loop, mixed
precision, influence scoring, pickling) lives here, once.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .._constraints import StrOptions, int_interval, real_interval
from ..diagnostics import fit_temperature, softmax_temperature, warn_if_unreliable
from ..influence import (
    ESTIMATES,
    gradient_factors,
    iter_gradient_influence_blocks,
    iter_influence_blocks,
)
from ..keys import check_instance_keys
from ..layers import tod_context, tod_modules
from ._distributed import ddp_mean, ddp_seed, ddp_world, ddp_wrap

logger = logging.getLogger(__name__)

__all__ = ["BaseToDClassifier", "ToDNetwork", "resolve_device"]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as torch reads it.

    Raises
    ------
    ValueError
        Naming ``device`` when torch does not know the string or the device is
        absent here.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("bogus")
    Traceback (most recent call last):
    ...
    ValueError: device='bogus' is not a device torch knows; use 'auto', 'cpu', 'cuda' or 'cuda:N'.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"device={device!r} is not a device torch knows; "
            "use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available here.")
    return dev


class ToDNetwork(nn.Module):
    """A network split at the lowest turn-over dropout layer.

    ``trunk`` holds everything below the first ToD layer: it does not depend on the
    instance mask, so scoring computes it once per target and reuses it for every
    training mask. ``head`` holds the ToD layers and everything above them.

    Parameters
    ----------
    trunk : nn.Module
        Mask-independent lower part (may be ``nn.Identity()``).
    head : nn.Module
        Upper part, containing every :class:`~tod_cleanse.layers.TurnOverDropout`.

    Examples
    --------
    >>> from torch import nn
    >>> net = ToDNetwork(nn.Identity(), nn.Linear(3, 2))
    >>> net(torch.zeros(4, 3)).shape
    torch.Size([4, 2])
    """

    def __init__(self, trunk: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = head

    def forward(self, x: Any) -> torch.Tensor:
        return self.head(self.trunk(x))


def _repeat_rows(h: Any, k: int) -> Any:
    """Repeat every row of a (nested) batch ``k`` times, row-major: r0 x k, r1 x k..."""
    if isinstance(h, torch.Tensor):
        return h.repeat_interleave(k, dim=0)
    if isinstance(h, dict):
        return {name: _repeat_rows(v, k) for name, v in h.items()}
    if isinstance(h, tuple | list):
        return type(h)(_repeat_rows(v, k) for v in h)
    return h


class BaseToDClassifier(ClassifierMixin, BaseEstimator):
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

    def _encode_y(self, y: Any, n_rows: int, *, fitting: bool, name: str = "y") -> np.ndarray:
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        y_arr = column_or_1d(np.asarray(y, dtype=object if _is_pandas_categorical(y) else None),
                             warn=True)
        if y_arr.shape[0] != n_rows:
            raise ValueError(f"{name} has {y_arr.shape[0]} entries but X has {n_rows} rows.")
        if y_arr.dtype.kind == "f" and not np.all(np.isfinite(y_arr)):
            raise ValueError(f"{name} contains NaN or infinite labels.")
        if y_arr.dtype.kind == "O" and any(v is None or v != v for v in y_arr):
            raise ValueError(f"{name} contains missing labels (None or NaN).")
        if fitting:
            if y_arr.dtype.kind == "O":
                kinds = {"number" if isinstance(v, numbers.Number) else type(v).__name__
                         for v in y_arr.tolist()}
                if len(kinds) > 1:
                    raise TypeError(
                        f"{name} mixes label types ({', '.join(sorted(kinds))}); "
                        "use labels of one type."
                    )
            check_classification_targets(y_arr)
            try:
                classes, encoded = np.unique(y_arr, return_inverse=True)
            except TypeError as exc:
                raise TypeError(
                    f"{name} mixes label types that cannot be compared ({exc}); "
                    "use labels of one type."
                ) from None
            if classes.shape[0] < 2:
                raise ValueError(
                    "Classifier can't train when only one class is present: "
                    f"{name} has the single class {classes[0]!r}; ToD needs at least two."
                )
            self.classes_ = classes
            return encoded.astype(np.int64)
        lookup = {c: i for i, c in enumerate(self.classes_.tolist())}
        try:
            return np.fromiter((lookup[v] for v in y_arr.tolist()), dtype=np.int64,
                               count=y_arr.shape[0])
        except (KeyError, TypeError):
            unknown = sorted({repr(v) for v in y_arr.tolist() if v not in lookup})[:5]
            raise ValueError(
                f"{name} contains labels never seen in fit: {', '.join(unknown)}; "
                f"known classes are {self.classes_.tolist()!r}."
            ) from None

    def encode_labels(self, y: Any, *, name: str = "y") -> np.ndarray:
        """Indices into ``classes_`` of the labels ``y`` (ValueError naming ``name``).

        Parameters
        ----------
        y : array-like of shape (n,)
            Labels among ``classes_``.
        name : str, default="y"
            Named in the error message.

        Returns
        -------
        ndarray of int64, shape (n,)
        """
        check_is_fitted(self)
        y_arr = np.asarray(y, dtype=object if _is_pandas_categorical(y) else None)
        return self._encode_y(y_arr, y_arr.shape[0] if y_arr.ndim else 1, fitting=False,
                              name=name)

    # -------------------------------------------------------------- training
    def initialize(self) -> BaseToDClassifier:
        """Build ``module_`` and ``optimizer_`` (skorch-style); called by :meth:`fit`."""
        self.device_ = resolve_device(self.device)
        self.module_ = self._build_module(len(self.classes_)).to(self.device_)
        if self.turn_over and not tod_modules(self.module_):
            raise RuntimeError(f"{type(self).__name__} built a network without ToD layers.")
        self.optimizer_ = self._make_optimizer()
        return self

    def _make_optimizer(self) -> torch.optim.Optimizer:
        decay, no_decay = [], []
        for param in self.module_.parameters():
            if param.requires_grad:
                (decay if param.ndim > 1 else no_decay).append(param)
        groups = [
            {"params": decay, "weight_decay": float(self.weight_decay)},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        if self.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=self.lr, momentum=0.9)
        cls = torch.optim.AdamW if self.optimizer == "adamw" else torch.optim.Adam
        return cls(groups, lr=self.lr)

    def _amp_dtype(self) -> torch.dtype | None:
        amp = self.amp
        if self.device_.type != "cuda" or amp is False or amp is None:
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def _lr_lambda(self, total_steps: int):
        schedule = self.lr_schedule or self._default_lr_schedule()
        warmup = int(round(float(self.warmup_fraction) * total_steps))

        def factor(step: int) -> float:
            if warmup and step < warmup:
                return (step + 1) / warmup
            if schedule == "linear":
                return max(0.0, (total_steps - step) / max(1, total_steps - warmup))
            return 1.0

        return factor

    def train_step(self, xb: Any, yb: torch.Tensor, kb: torch.Tensor,
                   loss_scale: float | None = None) -> float:
        """One optimisation step on a batch: instance ``i`` updates only ``m_i``.

        ``loss_scale`` (data-parallel training): the loss is the batch's *summed*
        cross-entropy times ``loss_scale`` (world size / rows of the global batch), so
        that DDP's average of the ranks' gradients is the gradient of the global
        batch's mean loss, whatever the shard sizes.
        """
        self.module_.train()
        self.optimizer_.zero_grad(set_to_none=True)
        mode = "seen" if self.turn_over else "full"
        amp_dtype = self._amp_dtype()
        with tod_context(kb, mode), torch.autocast(
            self.device_.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
        ):
            logits = self.module_(self._augment(xb))
            loss = (F.cross_entropy(logits.float(), yb) if loss_scale is None else
                    F.cross_entropy(logits.float(), yb, reduction="sum") * loss_scale)
        self.scaler_.scale(loss).backward()
        if self.grad_clip:
            self.scaler_.unscale_(self.optimizer_)
            nn.utils.clip_grad_norm_(self.module_.parameters(), float(self.grad_clip))
        self.scaler_.step(self.optimizer_)
        self.scaler_.update()
        self.scheduler_.step()
        return float(loss.detach())

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

    def _fit_loop(self, inputs: Any, y_enc: np.ndarray, keys: np.ndarray,
                  rng: np.random.Generator) -> None:
        n = y_enc.shape[0]
        bs = int(self.batch_size)
        steps_per_epoch = math.ceil(n / bs)
        total = steps_per_epoch * int(self.max_epochs)
        self.scheduler_ = torch.optim.lr_scheduler.LambdaLR(self.optimizer_, self._lr_lambda(total))
        amp_dtype = self._amp_dtype()
        self.scaler_ = torch.amp.GradScaler(
            self.device_.type, enabled=amp_dtype == torch.float16
        )
        y_t = torch.as_tensor(y_enc)
        k_t = torch.as_tensor(keys)
        self.history_ = []
        bar = tqdm(total=total, desc=f"{type(self).__name__}: training", unit="batch",
                   disable=not self.verbose, leave=False)
        tod_layers = tod_modules(self.module_) if self.turn_over else []
        for layer in tod_layers:  # hash each training key's masks once, not once per epoch
            layer.cache_masks(k_t.to(self.device_))
        ddp, net = ddp_world(), self.module_
        if ddp:  # data-parallel: same global batches, each rank its shard (keys travel along)
            self.module_ = ddp_wrap(net, self.device_)
        try:
            for epoch in range(int(self.max_epochs)):
                order = rng.permutation(n)
                losses = []
                for start in range(0, n, bs):
                    idx = order[start:start + bs]
                    scale = None
                    if ddp:
                        scale = ddp[1] / idx.shape[0]
                        idx = np.array_split(idx, ddp[1])[ddp[0]]
                    xb = self._batch(inputs, idx)
                    yb = y_t[idx].to(self.device_)
                    kb = k_t[idx].to(self.device_)
                    losses.append(self.train_step(xb, yb, kb, scale) if ddp
                                  else self.train_step(xb, yb, kb))
                    bar.update(1)
                mean_loss = ddp_mean(losses) if ddp else float(np.mean(losses))
                if not math.isfinite(mean_loss):
                    raise FloatingPointError(
                        f"training loss became {mean_loss} in epoch {epoch + 1}; lower lr."
                    )
                self.history_.append({"epoch": epoch + 1, "train_loss": mean_loss})
                bar.set_postfix(loss=f"{mean_loss:.4f}")
                logger.info("epoch %d/%d train_loss=%.4f", epoch + 1, self.max_epochs, mean_loss)
        finally:
            self.module_ = net
            bar.close()
            for layer in tod_layers:
                layer.cache_masks(None)

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
                flipped[idx] = lf.cpu().numpy()
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

    def iter_influence(self, X_t: Any, y_t: Any, *, estimate: str = "exact",
                       train_set: tuple[Any, Any] | None = None
                       ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(target_rows, block)`` with ``block[a, i] = I(z_t[a], z_i)``.

        Same values as :meth:`score_influence`, one block of targets at a time,
        so that a caller can reduce them (sum, top-k) in bounded memory.
        """
        self._require_tod("score_influence")
        if estimate not in ESTIMATES:
            raise ValueError(f"estimate must be one of {ESTIMATES}, got {estimate!r}.")
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
                repeat=_repeat_rows,
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
        keys = torch.as_tensor(self.train_keys_, device=self.device_)

        def factors(data: Any, labels: np.ndarray, mode: str) -> Any:
            def run(idx: np.ndarray) -> Any:
                xb = self._batch(data, idx)
                kb = keys[torch.as_tensor(idx, device=self.device_)] if mode == "seen" else None

                def forward() -> torch.Tensor:
                    with tod_context(kb, mode):
                        return self.module_.head(self.module_.trunk(xb))
                yb = torch.as_tensor(labels[idx], device=self.device_)
                return gradient_factors(self.module_, forward, yb)
            return run

        yield from iter_gradient_influence_blocks(
            factors(inputs, y_enc, "full"), factors(train, y_train, "seen"),
            n_targets=y_enc.shape[0], n_train=n, pairs_per_batch=self._score_batch_size(),
            verbose=bool(self.verbose))

    def score_influence(self, X_t: Any, y_t: Any, reduce: str | None = None, *,
                        estimate: str = "exact",
                        train_set: tuple[Any, Any] | None = None) -> np.ndarray:
        """Influence of every training instance on every target.

        ``estimate="exact"``: ``I(z_t, z_i) = L(z_t; flipped_i) - L(z_t; seen_i)``
        with ``L`` the cross-entropy of the target's label ``y_t``.
        ``estimate="gradient"``: the dot product of the target's loss gradient
        (full network) with training row ``i``'s loss gradient in its own seen
        sub-network, the only weights that row ever updated; it needs
        ``train_set`` and tracks retraining far better (LDS 0.37 against 0.04 on
        digits, ``examples/benchmarks/results/influence/lds.md``). Either way,
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
        estimate : {"exact", "gradient"}, default="exact"
            Which estimate (see above).
        train_set : tuple (X_train, y_train), optional
            The training rows, in fitting order; required by ``"gradient"``.

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
                label_filter: Any = None) -> Any:
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

        Returns
        -------
        pandas.DataFrame
        """
        from ..explain import explain

        return explain(self, X_t, y_t, k=k, label_filter=label_filter)

    # --------------------------------------------------------------- pickle
    def _rebuild_module(self) -> ToDNetwork:
        """A network of the fitted shape, to receive saved weights (see ``persistence``).

        Default: :meth:`_build_module`. A family whose builder reads external
        files (pretrained weights) overrides it to build from fitted metadata.
        """
        return self._build_module(len(self.classes_))

    def __getstate__(self) -> dict:
        from .persistence import dump_state

        return dump_state(self)

    def __setstate__(self, state: dict) -> None:
        from .persistence import restore_state

        restore_state(self, state)


def _is_pandas_categorical(y: Any) -> bool:
    is_pandas = type(y).__name__ in ("Series", "Categorical")
    return is_pandas and str(getattr(y, "dtype", "")) == "category"

