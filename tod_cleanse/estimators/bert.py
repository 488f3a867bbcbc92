"""ToDBertClassifier: a transformers BERT encoder fine-tuned with turn-over dropout."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ..layers import TurnOverDropout
from .base import BaseToDClassifier, ToDNetwork, resolve_device

__all__ = ["ToDBertClassifier"]

logger = logging.getLogger(__name__)

_ESTIMATOR_FILE = "tod_cleanse_estimator.json"
_ARRAYS_FILE = "tod_cleanse_fitted.npz"
_FITTED_ARRAYS = ("train_keys_", "y_train_", "self_influence_", "oos_proba_", "seen_proba_",
                  "train_proba_")


def _transformers():
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - transformers is a dependency
        raise ImportError(
            "ToDBertClassifier needs transformers: pip install 'tod-cleanse' (or pip install "
            "transformers)."
        ) from exc
    return transformers


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' notices and progress bars while loading and saving."""
    tf_logging = _transformers().logging
    level = tf_logging.get_verbosity()
    bars = tf_logging.is_progress_bar_enabled()
    tf_logging.set_verbosity_error()
    tf_logging.disable_progress_bar()
    try:
        yield
    finally:
        tf_logging.set_verbosity(level)
        if bars:
            tf_logging.enable_progress_bar()


def _attention_mask(config: Any, base: nn.Module, hidden: torch.Tensor,
                    mask_2d: torch.Tensor) -> Any:
    """The attention mask the encoder layers expect, for the configured attention kernel."""
    try:
        from transformers.masking_utils import create_bidirectional_mask
    except ImportError:  # pragma: no cover - transformers 4.x
        return base.get_extended_attention_mask(mask_2d, mask_2d.shape)
    return create_bidirectional_mask(config=config, inputs_embeds=hidden, attention_mask=mask_2d)


def _run_layers(layers: nn.ModuleList, config: Any, base: nn.Module, hidden: torch.Tensor,
                mask_2d: torch.Tensor) -> torch.Tensor:
    mask = _attention_mask(config, base, hidden, mask_2d)
    for layer in layers:
        out = layer(hidden, mask)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


class _BertTrunk(nn.Module):
    """Embeddings and the encoder layers below the lowest ToD layer (mask-independent)."""

    def __init__(self, base: nn.Module, n_layers: int, with_pooler: bool) -> None:
        super().__init__()
        self.embeddings = base.embeddings
        self.layers = nn.ModuleList(base.encoder.layer[:n_layers])
        self.pooler = base.pooler if with_pooler else None
        self._base = [base]  # a list: not registered, its modules are registered here and in head

    def forward(self, batch: dict[str, torch.Tensor]) -> Any:
        hidden = self.embeddings(input_ids=batch["input_ids"],
                                 token_type_ids=batch.get("token_type_ids"))
        mask_2d = batch["attention_mask"]
        if len(self.layers):
            hidden = _run_layers(self.layers, self._base[0].config, self._base[0], hidden,
                                 mask_2d)
        if self.pooler is not None:
            return self.pooler(hidden)
        return {"hidden": hidden, "attention_mask": mask_2d}


class _BertHead(nn.Module):
    """Upper encoder layers, pooler, classifier dropout and classifier: every ToD layer."""

    def __init__(self, base: nn.Module, first_layer: int, dropout: nn.Module,
                 classifier: nn.Module) -> None:
        super().__init__()
        n = len(base.encoder.layer)
        self.layers = nn.ModuleList(base.encoder.layer[first_layer:n])
        self.pooler = base.pooler if first_layer < n else None
        self.dropout = dropout
        self.classifier = classifier
        self._base = [base]

    def forward(self, h: Any) -> torch.Tensor:
        if isinstance(h, dict):
            hidden = _run_layers(self.layers, self._base[0].config, self._base[0], h["hidden"],
                                 h["attention_mask"])
            h = self.pooler(hidden)
        return self.classifier(self.dropout(h))


class _BertToDNetwork(ToDNetwork):
    """:class:`ToDNetwork` that also keeps the transformers model (for ``save_pretrained``).

    The transformers model is not registered as a submodule: every one of its
    modules is already registered in ``trunk`` or ``head``.
    """

    def __init__(self, trunk: nn.Module, head: nn.Module, hf_model: nn.Module) -> None:
        super().__init__(trunk, head)
        self._hf = [hf_model]

    @property
    def hf_model(self) -> nn.Module:
        return self._hf[0]


def _parse_tod_layers(value: Any, n_layers: int) -> int:
    """Number of top encoder layers that get ToD (0 for "head")."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        k = int(value)
    elif value == "head":
        k = 0
    elif value == "all":
        k = n_layers
    elif isinstance(value, str) and re.fullmatch(r"top-\d+", value):
        k = int(value[4:])
    else:
        raise ValueError(
            f"tod_layers must be 'head', 'all', 'top-N' or an integer N, got {value!r}."
        )
    if not 0 <= k <= n_layers:
        raise ValueError(
            f"tod_layers={value!r} asks for {k} encoder layers but the model has {n_layers}."
        )
    return k


class ToDBertClassifier(BaseToDClassifier):
    """BERT-family text classifier fine-tuned with turn-over dropout [1]_.

    Loads ``model_name_or_path`` (a hub name or a local folder) with
    ``AutoTokenizer`` and ``AutoModelForSequenceClassification``, replaces its
    dropout sites by turn-over dropout and fine-tunes it the usual BERT way:
    AdamW with weight decay, linear warm-up then linear decay, gradient
    clipping, mixed precision on CUDA.

    Where ToD sits (``tod_layers``), what is separated and what is shared
        ``"head"`` (default)
            Only the classifier dropout (on the pooled ``[CLS]`` vector) is
            turn-over dropout. The classification layer is rebuilt without a
            bias, so its weights are exactly separated: the columns of the
            flipped sub-network never receive a gradient from the instance.
            Embeddings, every encoder layer and the pooler are shared.
        ``"top-N"``
            Also the two hidden-state dropouts of each of the top ``N`` encoder
            layers (after the attention output and after the feed-forward
            output, ``dim=-1``, one mask per instance over the hidden units).
            Their output projections are separated row-wise; attention,
            LayerNorm, the residual stream, the pooler and everything below
            layer ``L - N`` stay shared (partial separation).
        ``"all"``
            ``"top-L"``: every encoder layer. The embeddings stay shared.

        Attention-probability and embedding dropouts stay ordinary dropout
        (they are not hidden units of an instance's sub-network).

        Why ``"head"`` by default: (1) a pretrained encoder was trained with
        10% dropout; removing half of the hidden units at every layer (``p=0.5``)
        disturbs the pretrained representation far more than masking the
        classifier input does, and fine-tuning runs only a few epochs; (2) the
        whole encoder is the mask-independent trunk, so :meth:`score_influence`
        encodes each target once and evaluates each (target, training row) pair
        with one ``hidden x n_classes`` product, which makes influence on an
        evaluation set affordable on a CPU; ``"top-N"`` runs ``N`` transformer
        layers per pair. ``examples/wordnet_bert.py --tod-layers head,top-1``
        prints the detection quality of both placements on real data.

    Scoring: everything below the lowest ToD layer (embeddings and the lower
    layers, or the whole encoder and pooler for ``"head"``) is the trunk; it runs
    once per target and its output is reused for every training mask.

    Parameters
    ----------
    model_name_or_path : str or path, default="bert-base-uncased"
        Hub name (needs the internet) or a local folder with the tokenizer and
        the encoder weights (e.g. one written by ``save_pretrained``). The
        classification layer is always built anew for the classes of ``y``.
    tod_layers : "head", "all", "top-N" or int, default="head"
        ToD placement, see above; an integer ``N`` means ``"top-N"``.
    max_length : int, default=128
        Token limit per text (or pair); longer inputs are truncated. Each batch
        is padded only to its longest row.
    p : float, default=0.5
        ToD drop rate: each instance trains a fraction ``1 - p`` of the units of
        each ToD layer; its flipped sub-network is the other ``p``.
    inner_p : float, default=0.0
        Ordinary dropout inside the instance's own sub-network (training only).
    mask_seed : int, default=0
    mask_groups : int or None, default=None
    turn_over : bool, default=True
        ``False`` fine-tunes the same network with ordinary dropout (a baseline).
    max_epochs : int, default=3
    batch_size : int, default=32
    lr : float, default=5e-5
    optimizer : {"adamw", "adam", "sgd"}, default="adamw"
    weight_decay : float, default=0.01
        Not applied to biases and LayerNorm weights.
    lr_schedule : {"linear", "constant"} or None, default=None
        ``None`` means ``"linear"`` (warm-up, then linear decay to 0).
    warmup_fraction : float, default=0.1
    grad_clip : float or None, default=1.0
    score_batch_size : int or None, default=None
        (target, training mask) pairs per forward pass in :meth:`score_influence`;
        ``None``: 4096 for ``"head"``, 64 otherwise (each pair then runs
        transformer layers over the whole sequence).
    amp : bool or "auto", default="auto"
        Mixed precision on CUDA (bfloat16 where supported); ignored on the CPU.
    device : str, default="auto"
    random_state : int, RandomState or None, default=None
    verbose : int, default=1

    Attributes
    ----------
    classes_, module_, optimizer_, device_, train_keys_, y_train_, self_influence_,
    oos_proba_, seen_proba_, train_proba_, history_ : see
    :class:`~tod_cleanse.estimators.base.BaseToDClassifier`.
    tokenizer_ : transformers tokenizer
    is_pair_ : bool
        Whether ``X`` holds sentence pairs.
    n_tod_layers_ : int
        Encoder layers with ToD (0 for ``"head"``).

    Notes
    -----
    ``X`` is a sequence of strings (list, numpy array, pandas Series or a
    one-column DataFrame), or of string pairs for sentence-pair tasks (a list of
    2-tuples, an ``(n, 2)`` array or a two-column DataFrame). Supported models:
    BERT-architecture encoders whose sequence-classification model has
    ``base_model.embeddings``, ``base_model.encoder.layer``, ``base_model.pooler``,
    ``dropout`` and a linear ``classifier`` (BERT, MiniLM and other BERT
    checkpoints).

    Persistence: ``pickle`` (a model trained on a GPU loads on a CPU machine),
    or :meth:`save_pretrained` / :meth:`from_pretrained`, which write a standard
    transformers folder (loadable by ``AutoModel``) plus the fitted scores.

    References
    ----------
    .. [1] S. Kobayashi, S. Yokoi, J. Suzuki, K. Inui. *Efficient Estimation of
       Influence of a Training Instance*. SustaiNLP 2020. arXiv:2012.04207.

    Examples
    --------
    >>> from tod_cleanse import ToDBertClassifier
    >>> clf = ToDBertClassifier("path/to/local/bert", tod_layers="top-2", max_length=64)
    >>> clf.get_params()["tod_layers"]
    'top-2'

    After ``clf.fit(texts, labels)``: ``clf.self_influence_``, ``clf.oos_proba_``
    and ``clf.score_influence(texts_eval, labels_eval)``.
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike = "bert-base-uncased",
        tod_layers: str | int = "head",
        max_length: int = 128,
        p: float = 0.5,
        inner_p: float = 0.0,
        mask_seed: int = 0,
        mask_groups: int | None = None,
        turn_over: bool = True,
        max_epochs: int = 3,
        batch_size: int = 32,
        lr: float = 5e-5,
        optimizer: str = "adamw",
        weight_decay: float = 0.01,
        lr_schedule: str | None = None,
        warmup_fraction: float = 0.1,
        grad_clip: float | None = 1.0,
        score_batch_size: int | None = None,
        amp: bool | str = "auto",
        device: str = "auto",
        random_state: int | None = None,
        verbose: int = 1,
    ) -> None:
        self.model_name_or_path = model_name_or_path
        self.tod_layers = tod_layers
        self.max_length = max_length
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.non_deterministic = False
        return tags

    def _default_lr_schedule(self) -> str:
        return "linear"

    def _score_batch_size(self) -> int:
        if self.score_batch_size:
            return int(self.score_batch_size)
        return 4096 if getattr(self, "n_tod_layers_", 0) == 0 else 64

    def _predict_batch_size(self) -> int:
        return max(int(self.batch_size), 64)

    # ------------------------------------------------------------------ input
    @staticmethod
    def _as_texts(X: Any) -> tuple[list, bool]:
        """``(rows, is_pair)``; rows are strings or 2-tuples of strings."""
        if isinstance(X, str | bytes):
            raise TypeError("X must be a sequence of strings, got a single string; wrap it in "
                            "a list.")
        if hasattr(X, "columns"):  # DataFrame
            if X.shape[1] not in (1, 2):
                raise ValueError(
                    f"X as a DataFrame must have 1 column (texts) or 2 (text pairs), got "
                    f"{X.shape[1]}."
                )
            arr = X.to_numpy(dtype=object)
            return ([r[0] for r in arr.tolist()], False) if arr.shape[1] == 1 else (
                [tuple(r) for r in arr.tolist()], True)
        if hasattr(X, "to_numpy"):  # Series
            X = X.to_numpy(dtype=object)
        if isinstance(X, np.ndarray):
            if X.ndim == 2 and X.shape[1] == 1:
                X = X[:, 0]
            if X.ndim == 2 and X.shape[1] == 2:
                return [tuple(r) for r in X.tolist()], True
            if X.ndim != 1:
                raise ValueError(
                    f"X must be 1-D (texts) or have 2 columns (text pairs), got shape {X.shape}."
                )
            return X.tolist(), False
        try:
            rows = list(X)
        except TypeError:
            raise TypeError(
                f"X must be a sequence of strings or of string pairs, got {type(X).__name__}."
            ) from None
        is_pair = bool(rows) and all(isinstance(r, tuple | list) for r in rows)
        if is_pair:
            bad = next((i for i, r in enumerate(rows) if len(r) != 2), None)
            if bad is not None:
                raise ValueError(f"X: text pairs must have 2 strings, row {bad} has "
                                 f"{len(rows[bad])}.")
            rows = [tuple(r) for r in rows]
        return rows, is_pair

    def _load_tokenizer(self) -> Any:
        path = str(self.model_name_or_path)
        try:
            tok = _transformers().AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ValueError(
                f"model_name_or_path={path!r}: no tokenizer could be loaded ({exc}). A local "
                "folder needs the tokenizer files (tokenizer.json, or vocab.txt with "
                "tokenizer_config.json); a hub name needs network access."
            ) from exc
        # transformers 5 builds an empty tokenizer (special tokens only) when a
        # folder has no tokenizer files: every word would become [UNK].
        if len(tok) <= len(set(tok.all_special_tokens)) + 1:
            raise ValueError(
                f"model_name_or_path={path!r}: no tokenizer vocabulary was found (the loaded "
                f"{type(tok).__name__} has only {len(tok)} special tokens). A local folder "
                "needs the tokenizer files (tokenizer.json, or vocab.txt with "
                "tokenizer_config.json)."
            )
        tok.padding_side = "right"
        return tok

    def _validate_X(self, X: Any, *, reset: bool) -> dict[str, np.ndarray]:
        rows, is_pair = self._as_texts(X)
        if not rows:
            raise ValueError("X is empty: at least one text is needed.")
        for i, r in enumerate(rows):
            parts = r if is_pair else (r,)
            if not all(isinstance(s, str) for s in parts):
                bad = next(s for s in parts if not isinstance(s, str))
                raise TypeError(
                    f"X must hold strings (texts{' or text pairs' if is_pair else ''}); row {i} "
                    f"holds {type(bad).__name__} {bad!r}."
                )
        if not isinstance(self.max_length, int | np.integer) or self.max_length < 2:
            raise ValueError(f"max_length must be an integer >= 2, got {self.max_length!r}.")
        if reset:
            self.is_pair_ = is_pair
            self.tokenizer_ = self._load_tokenizer()
        elif is_pair != self.is_pair_:
            raise ValueError(
                f"X holds {'text pairs' if is_pair else 'single texts'} but the model was "
                f"fitted on {'text pairs' if self.is_pair_ else 'single texts'}."
            )
        first = [r[0] for r in rows] if is_pair else rows
        second = [r[1] for r in rows] if is_pair else None
        enc = self.tokenizer_(first, second, truncation=True, max_length=int(self.max_length),
                              padding="longest", return_tensors="np")
        out = {"input_ids": enc["input_ids"].astype(np.int32),
               "attention_mask": enc["attention_mask"].astype(np.int8)}
        if "token_type_ids" in enc:
            out["token_type_ids"] = enc["token_type_ids"].astype(np.int8)
        return out

    def _batch(self, inputs: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, torch.Tensor]:
        mask = inputs["attention_mask"][idx]
        length = max(1, int(mask.sum(axis=1).max()))  # right padding: trim to the batch
        return {name: torch.as_tensor(v[idx, :length], dtype=torch.long).to(self.device_)
                for name, v in inputs.items()}

    # ---------------------------------------------------------------- network
    def _load_model(self, n_classes: int) -> nn.Module:
        tf = _transformers()
        path = str(self.model_name_or_path)
        try:
            config = tf.AutoConfig.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"model_name_or_path={path!r}: no model configuration could be loaded ({exc}). "
                "A local folder needs config.json and the weights; a hub name needs network "
                "access."
            ) from exc
        config.num_labels = n_classes
        try:
            with _quiet_transformers():
                model = tf.AutoModelForSequenceClassification.from_pretrained(
                    path, config=config, ignore_mismatched_sizes=True)
        except ValueError as exc:
            raise ValueError(
                f"model_name_or_path={path!r}: {type(config).__name__} has no "
                f"sequence-classification head in transformers ({exc})."
            ) from exc
        except OSError as exc:
            raise ValueError(
                f"model_name_or_path={path!r}: the model weights could not be loaded ({exc})."
            ) from exc
        base = model.base_model
        layers = getattr(getattr(base, "encoder", None), "layer", None)
        ok = (
            isinstance(getattr(model, "classifier", None), nn.Linear)
            and isinstance(getattr(model, "dropout", None), nn.Dropout)
            and getattr(base, "embeddings", None) is not None
            and getattr(base, "pooler", None) is not None
            and isinstance(layers, nn.ModuleList)
            and all(isinstance(getattr(getattr(lay, "output", None), "dropout", None), nn.Dropout)
                    and isinstance(getattr(getattr(getattr(lay, "attention", None), "output",
                                                   None), "dropout", None), nn.Dropout)
                    for lay in layers)
        )
        if not ok:
            raise ValueError(
                f"model_name_or_path={path!r} loads a {type(model).__name__}, which does not "
                "have the BERT layout ToDBertClassifier needs (base_model.embeddings, "
                "base_model.encoder.layer with attention/output dropouts, base_model.pooler, "
                "dropout, a linear classifier)."
            )
        return model

    def _build_module(self, n_classes: int) -> ToDNetwork:
        model = self._load_model(n_classes)
        base = model.base_model
        n_layers = len(base.encoder.layer)
        k = _parse_tod_layers(self.tod_layers, n_layers)
        self.n_tod_layers_ = k
        common = dict(p=self.p, seed=self.mask_seed, n_groups=self.mask_groups,
                      inner_p=self.inner_p)
        # Layer seeds do not depend on the placement: the classifier mask is the
        # same for "head" and "top-N".
        model.dropout = TurnOverDropout(layer_seed=0, **common)
        for i in range(n_layers - k, n_layers):
            layer = base.encoder.layer[i]
            layer.attention.output.dropout = TurnOverDropout(layer_seed=1 + 2 * i, **common)
            layer.output.dropout = TurnOverDropout(layer_seed=2 + 2 * i, **common)
        # No bias: a bias is shared by every sub-network and would break the exact
        # separation of the classification layer. Its weights are kept (they are
        # the trained ones when loading a folder written by save_pretrained).
        old = model.classifier
        clf = nn.Linear(old.in_features, n_classes, bias=False)
        with torch.no_grad():
            clf.weight.copy_(old.weight)
        model.classifier = clf
        labels = [str(c) for c in self.classes_]
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {c: i for i, c in enumerate(labels)}
        cut = n_layers - k
        trunk = _BertTrunk(base, cut, with_pooler=k == 0)
        head = _BertHead(base, cut, model.dropout, model.classifier)
        return _BertToDNetwork(trunk, head, model)

    # ------------------------------------------------------------ persistence
    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write the fine-tuned model, its tokenizer and the fitted scores to a folder.

        The folder is a standard transformers checkpoint (``AutoModel`` loads the
        fine-tuned encoder from it) plus ``tod_cleanse_estimator.json`` (parameters,
        classes, history) and ``tod_cleanse_fitted.npz`` (keys, labels,
        self-influence, out-of-sample probabilities). Reload it with
        :meth:`from_pretrained`.

        Parameters
        ----------
        path : str or path
            Folder to write (created if needed; files of the same name are replaced).
        """
        check_is_fitted(self)
        os.makedirs(path, exist_ok=True)
        with _quiet_transformers():
            self.module_.hf_model.save_pretrained(path)
        self.tokenizer_.save_pretrained(path)
        params = {k: v for k, v in self.get_params().items()
                  if k not in ("model_name_or_path", "device")}
        if not isinstance(params.get("random_state"), int | type(None)):
            params["random_state"] = None
        meta = {"estimator": type(self).__name__, "params": params,
                "classes": self.classes_.tolist(), "is_pair": bool(self.is_pair_),
                "history": self.history_}
        with open(os.path.join(path, _ESTIMATOR_FILE), "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=1)
        arrays = {k: getattr(self, k) for k in _FITTED_ARRAYS if hasattr(self, k)}
        np.savez(os.path.join(path, _ARRAYS_FILE), **arrays)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str = "auto",
                        **params: Any) -> ToDBertClassifier:
        """Load an estimator written by :meth:`save_pretrained`.

        Parameters
        ----------
        path : str or path
            Folder written by :meth:`save_pretrained`.
        device : str, default="auto"
            Where to load the model (a GPU-trained model loads on the CPU).
        **params
            Estimator parameters to override (e.g. ``verbose=0``).

        Returns
        -------
        ToDBertClassifier
            Fitted: ``predict``, ``score_influence`` and the fitted scores work;
            ``fit`` fine-tunes again starting from the saved weights.
        """
        meta_path = os.path.join(path, _ESTIMATOR_FILE)
        if not os.path.isfile(meta_path):
            raise ValueError(f"path={str(path)!r} has no {_ESTIMATOR_FILE}; it was not written "
                             "by ToDBertClassifier.save_pretrained.")
        with open(meta_path, encoding="utf-8") as fh:
            meta = json.load(fh)
        est = cls(**{**meta["params"], **params, "model_name_or_path": str(path),
                     "device": device})
        est.classes_ = np.asarray(meta["classes"])
        est.is_pair_ = bool(meta["is_pair"])
        est.history_ = meta["history"]
        est.device_ = resolve_device(device)
        est.tokenizer_ = est._load_tokenizer()
        est.module_ = est._build_module(len(est.classes_)).to(est.device_)
        est.module_.eval()
        est.optimizer_ = est._make_optimizer()
        with np.load(os.path.join(path, _ARRAYS_FILE)) as arrays:
            for name in arrays.files:
                setattr(est, name, arrays[name])
        return est
