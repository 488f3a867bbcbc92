"""Turn-over dropout inside any transformers sequence-classification encoder.

Nothing here lists model classes. What a model is comes from its modules and
from one probe forward pass on a tiny batch:

* the *classification head* is every module outside ``model.base_model``; the
  dropout modules it calls become turn-over dropout, and its output layer (the
  last ``nn.Linear`` with ``num_labels`` outputs) loses its bias;
* the *encoder layers* are the ``nn.ModuleList`` of ``num_hidden_layers`` blocks
  of one class; with ``tod_layers="top-N"`` the dropouts that the top ``N`` call
  on hidden states (3-D inputs: one mask per instance over the hidden units,
  shared by every token) become turn-over dropout. Attention-probability dropout
  (4-D inputs, or fused into the attention kernel) stays ordinary.

Scoring reuses a mask-independent *trunk* per target, split without knowing
the family's ``forward``:

* ``"head"``: the trunk is the whole encoder (``base_model``); the head runs the
  model's own ``forward`` with ``base_model`` standing in as a replay of the
  trunk's output. When the head reads only the first token (which the probe
  checks), only that token is kept per target.
* ``"top-N"``: the trunk runs ``base_model`` up to the output of layer
  ``L - N - 1`` and stops; the head runs the whole model again with the lower
  layers replaced by a replay of that output (the embeddings are recomputed,
  the lower layers are not).

Either way the split is checked once on the probe batch against the plain
forward pass (full network and one instance's sub-network); a model where
they differ gets a ``ValueError`` naming its type.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from ..folds import OutOfFoldMembers
from ..layers import TurnOverDropout, tod_context
from .base import ToDNetwork
from .text_members import _Stop, encoder_layers, keep_member_features

__all__ = ["TextToDNetwork", "encoder_layers", "parse_tod_layers", "place_tod", "SUPPORTED"]

SUPPORTED = ("encoders whose sequence-classification head calls nn.Dropout before its "
             "output layer (BERT, MiniLM, RoBERTa, XLM-R, DistilBERT, DeBERTa-v2/v3, ELECTRA, "
             "ModernBERT ...)")
_HEAD_SEED_BASE = 10_000  # head dropouts after the first one; layer seeds stay below


def parse_tod_layers(value: Any, n_layers: int) -> int:
    """Number of top encoder layers that get ToD (0 for ``"head"``).

    Examples
    --------
    >>> parse_tod_layers("top-2", 6), parse_tod_layers("all", 6), parse_tod_layers("head", 6)
    (2, 6, 0)
    """
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


def _model_type(model: nn.Module) -> str:
    return str(getattr(model.config, "model_type", type(model).__name__))


def _accepted(fn: Any) -> set[str]:
    return {name for name, par in inspect.signature(fn).parameters.items()
            if par.kind not in (par.VAR_KEYWORD, par.VAR_POSITIONAL)}


def probe_batch(model: nn.Module) -> dict[str, torch.Tensor]:
    """Two rows of 6 tokens (the second right-padded by 2) of ids valid for the model."""
    vocab = int(getattr(model.config, "vocab_size", 100))
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(min(5, vocab - 1), max(6, min(vocab, 100)), (2, 6), generator=gen)
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, 4:] = 0
    device = next(model.parameters()).device
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def _called_dropouts(model: nn.Module, batch: dict[str, torch.Tensor]
                     ) -> dict[str, tuple[nn.Module, int]]:
    """Qualified name -> (module, ndim of its input) of every dropout the forward pass calls."""
    seen: dict[str, tuple[nn.Module, int]] = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Dropout | TurnOverDropout):
            def hook(m, args, name=name):
                seen.setdefault(name, (m, args[0].dim()))
            hooks.append(mod.register_forward_pre_hook(hook))
    try:
        with torch.no_grad(), tod_context(None, "full"):
            model(**batch)
    finally:
        for h in hooks:
            h.remove()
    return seen


def place_tod(model: nn.Module, k: int, tod: dict[str, Any]) -> int:
    """Put ToD in the head (and the top ``k`` layers) of ``model``, in place.

    Returns the number of encoder layers (``L``). Raises ``ValueError`` naming the
    model type when the head has no dropout, the head has no output layer, or
    ``k > 0`` and the encoder layers or their hidden-state dropouts are not found.
    """
    mtype, cls_name = _model_type(model), type(model).__name__
    batch = {n: v for n, v in probe_batch(model).items() if n in _accepted(model.forward)}
    was_training = model.training
    model.eval()
    called = _called_dropouts(model, batch)
    base_prefix = model.base_model_prefix + "."
    head_drop = [n for n in called if not n.startswith(base_prefix)]
    if not head_drop:
        raise ValueError(
            f"model type {mtype!r} ({cls_name}): its classification head calls no dropout "
            f"module, so there is no place for turn-over dropout. Supported: {SUPPORTED}."
        )
    n_labels = int(model.config.num_labels)
    outs = [n for n, m in model.named_modules() if not n.startswith(base_prefix) and n
            and isinstance(m, nn.Linear) and m.out_features == n_labels]
    if not outs:
        raise ValueError(f"model type {mtype!r} ({cls_name}): no linear output layer with "
                         f"{n_labels} outputs in its classification head. Supported: {SUPPORTED}.")
    layers = encoder_layers(model)
    n_layers = len(layers) if layers is not None else 0
    if k and layers is None:
        raise ValueError(f"model type {mtype!r} ({cls_name}): no list of "
                         f"num_hidden_layers encoder layers of one class was found (shared or "
                         "grouped layers?), so tod_layers must be 'head'. 'top-N' needs one "
                         "module per encoder layer, as BERT, RoBERTa, DistilBERT, DeBERTa, "
                         "ELECTRA and ModernBERT have.")
    replace: list[tuple[str, int, int]] = []  # (name, layer seed, dim)
    for j, name in enumerate(head_drop):
        replace.append((name, j if j == 0 else _HEAD_SEED_BASE + j, -1))
    if k:
        replace += _layer_dropouts(model, layers, k, called, mtype)
    for name, seed, dim in replace:
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr,
                TurnOverDropout(layer_seed=seed, dim=dim, **tod))
    name = outs[-1]
    parent, _, attr = name.rpartition(".")
    old = model.get_submodule(name)
    # No bias: a bias is shared by every sub-network and would break the exact
    # separation of the output layer. Its weights are kept (trained ones when
    # loading a folder written by save_pretrained).
    new = nn.Linear(old.in_features, old.out_features, bias=False).to(old.weight.device)
    with torch.no_grad():
        new.weight.copy_(old.weight)
    setattr(model.get_submodule(parent) if parent else model, attr, new)
    model.train(was_training)
    return n_layers


def _layer_dropouts(model: nn.Module, layers: nn.ModuleList, k: int,
                    called: dict[str, tuple[nn.Module, int]], mtype: str
                    ) -> list[tuple[str, int, int]]:
    """(name, seed, dim) of the hidden-state dropouts of the top ``k`` layers."""
    qual = {id(m): n for n, m in model.named_modules()}
    n_layers = len(layers)
    found: list[list[str]] = []
    for i in range(n_layers - k, n_layers):
        prefix = qual[id(layers[i])] + "."
        names = [n for n, (_, ndim) in called.items() if n.startswith(prefix) and ndim == 3]
        if not names:
            raise ValueError(
                f"model type {mtype!r}: encoder layer {i} calls no dropout on its hidden "
                "states (its hidden dropout may be switched off in the config, e.g. a zero "
                "attention/hidden dropout replaced by nn.Identity), so tod_layers must be "
                "'head' or at most the layers that have one."
            )
        found.append(names)
    per_layer = max(len(names) for names in found)
    return [(name, 1 + per_layer * i + j, -1)
            for i, names in zip(range(n_layers - k, n_layers), found, strict=True)
            for j, name in enumerate(names)]


class _Replay(nn.Module):
    """Stands in for a submodule and returns what the holder says (no parameters).

    Other attributes (e.g. a layer's ``attention_type``, which an encoder loop
    may read) come from the module it stands in for.
    """

    def __init__(self, holder: dict[str, Any], original: nn.Module | None = None) -> None:
        super().__init__()
        self._holder = holder
        self._original = [original]

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            original = self.__dict__.get("_original", [None])[0]
            if original is None:
                raise
            return getattr(original, name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._holder["out"]


class _Part(nn.Module):
    """Trunk or head of a :class:`TextToDNetwork` (no parameters of its own)."""

    def __init__(self, net: TextToDNetwork, fn: str) -> None:
        super().__init__()
        self._net = [net]  # a list: not registered (the network owns the model)
        self._fn = fn

    def forward(self, x: Any) -> Any:
        return getattr(self._net[0], self._fn)(x)


class TextToDNetwork(ToDNetwork):
    """A transformers sequence-classification model with ToD, split for scoring.

    Parameters
    ----------
    model : transformers PreTrainedModel
        Already modified by :func:`place_tod`.
    n_tod_layers : int
        Encoder layers with ToD (0: only the head).
    """

    def __init__(self, model: nn.Module, n_tod_layers: int) -> None:
        super().__init__(nn.Identity(), nn.Identity())
        self.trunk = _Part(self, "_trunk_forward")
        self.head = _Part(self, "_head_forward")
        self.model = model
        self.n_tod_layers = int(n_tod_layers)
        # "encoder": the trunk is base_model; "layers": it stops below layer `cut`;
        # "none": every layer has ToD, the trunk passes the batch through.
        self.cut = 0
        if not self.n_tod_layers:
            self.split = "encoder"
        else:
            self.cut = len(encoder_layers(model)) - self.n_tod_layers
            self.split = "layers" if self.cut else "none"
        self.inputs = sorted(_accepted(model.forward) & _accepted(model.base_model.forward))
        self.member_layer: int | None = None
        self.first_token_only = False
        self.first_token_only = self.split == "encoder" and self._reads_first_token()

    @property
    def hf_model(self) -> nn.Module:
        return self.model

    def _layers(self) -> nn.ModuleList:
        return encoder_layers(self.model)

    def _inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {n: v for n, v in batch.items() if n in self.inputs}

    def forward(self, batch: dict[str, torch.Tensor]) -> Any:
        inputs = self._inputs(batch)
        if self.members is None or not self.training:
            return self.model(**inputs).logits
        with self._keep_member_features(inputs) as captured:
            logits = self.model(**inputs).logits
        return logits, self.members(captured["features"])

    # ------------------------------------------------------- out-of-fold members
    def attach_members(self, n_folds: int | None, width: int, n_classes: int,
                       layer: int | None = None) -> None:
        """Out-of-fold members on the encoder's features, detached.

        The members (:class:`~tod_cleanse.folds.OutOfFoldMembers`) read the output
        of encoder layer ``layer`` (``1..L``; ``0``: the embeddings), averaged over
        the row's tokens, or with ``layer=None`` the pooler output when the encoder
        has one, else the first token's last hidden state. ``layer`` must lie below
        every ToD layer (:func:`member_layer`). The encoder's weights never see the
        members' loss. ``n_folds=None``: no members.
        """
        if not n_folds:
            return
        self.member_layer = None if layer is None else int(layer)
        batch = self._inputs(probe_batch(self.model))
        with _eval(self.model), torch.no_grad(), tod_context(None, "full"), \
                self._keep_member_features(batch) as captured:
            self.model.base_model(**batch)
        self.members = OutOfFoldMembers(int(captured["features"].shape[1]), int(n_folds),
                                        int(width), n_classes,
                                        seed=torch.initial_seed() % 2**31)
        self.members_input = "trunk"

    def _keep_member_features(self, batch: dict[str, torch.Tensor], stop: bool = False
                              ) -> contextlib.AbstractContextManager[dict[str, torch.Tensor]]:
        """:func:`~.text_members.keep_member_features` on this network's members' layer."""
        return keep_member_features(self.model, self.member_layer, batch, stop=stop)

    def member_logits(self, x: Any, h: Any) -> torch.Tensor:
        """The members' logits: on the features the trunk's pass kept, else (a trunk that
        stops below the members' layer, or none) on a pass of the unmasked encoder."""
        if isinstance(h, dict) and "member_features" in h:  # kept by the trunk's pass
            return self.members(h["member_features"])
        inputs = self._inputs(x)
        with tod_context(None, "full"), self._keep_member_features(inputs, stop=True) as c:
            self.model.base_model(**inputs)
        return self.members(c["features"])

    # ------------------------------------------------------------ the split
    def _trunk_forward(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        batch = self._inputs(batch)
        if self.members is not None and (self.split == "encoder" or (
                self.split == "layers" and self.member_layer is not None)):
            # the members' features come from the same pass (their layer is below the cut)
            with self._keep_member_features(batch) as captured:
                h = self._split_trunk(batch)
            return {**h, "member_features": captured["features"]}
        return self._split_trunk(batch)

    def _split_trunk(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        if self.split == "encoder":
            out = self.model.base_model(**batch)
            hidden = out[0][:, :1] if self.first_token_only else out[0]
            mask = batch["attention_mask"]
            h = {"hidden": hidden, "attention_mask": mask[:, :1] if self.first_token_only
                 else mask}
            if getattr(out, "pooler_output", None) is not None:
                h["pooler"] = out.pooler_output
            return h
        if self.split == "none":
            return {"batch": batch}
        captured: dict[str, Any] = {}

        def stop(module, args, output):
            captured["out"] = output
            raise _Stop

        hook = self._layers()[self.cut - 1].register_forward_hook(stop)
        try:
            self.model.base_model(**batch)
        except _Stop:
            pass
        finally:
            hook.remove()
        return {"batch": batch, "replay": captured["out"]}

    def _head_forward(self, h: dict[str, Any]) -> torch.Tensor:
        if "hidden" in h:
            return self._replay_encoder(h)
        if "replay" not in h:
            return self.model(**h["batch"]).logits
        layers = self._layers()
        holder = {"out": h["replay"]}
        saved = [layers[i] for i in range(self.cut)]
        try:
            for i in range(self.cut):
                layers[i] = _Replay(holder, saved[i])
            return self.model(**h["batch"]).logits
        finally:
            for i, layer in enumerate(saved):
                layers[i] = layer

    def _replay_encoder(self, h: dict[str, Any]) -> torch.Tensor:
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        prefix = self.model.base_model_prefix
        base = self.model._modules[prefix]
        holder = {"out": BaseModelOutputWithPooling(last_hidden_state=h["hidden"],
                                                     pooler_output=h.get("pooler"))}
        mask = h["attention_mask"]
        try:
            self.model._modules[prefix] = _Replay(holder, base)
            return self.model(input_ids=torch.zeros_like(mask), attention_mask=mask).logits
        finally:
            self.model._modules[prefix] = base

    @torch.no_grad()
    def _reads_first_token(self) -> bool:
        """Whether the head's output depends on the first token's hidden state only."""
        with _eval(self.model), tod_context(None, "full"):
            h = self._trunk_forward(probe_batch(self.model))
            other = dict(h, hidden=h["hidden"].clone())
            rest = other["hidden"][:, 1:]  # a local generator: fit's random stream is untouched
            gen = torch.Generator().manual_seed(1)
            rest.copy_(torch.randn(rest.shape, generator=gen).to(rest))
            return torch.allclose(self._head_forward(h), self._head_forward(other), atol=1e-6)

    @torch.no_grad()
    def check_split(self) -> float:
        """Largest gap between trunk+head and the plain forward pass on the probe batch."""
        batch = probe_batch(self.model)
        keys = torch.tensor([3, 11], device=batch["input_ids"].device)
        gap = 0.0
        with _eval(self.model):
            for mode in ("full", "seen", "flipped"):
                with tod_context(None if mode == "full" else keys, mode):
                    split = self.head(self.trunk(batch))
                    plain = self.forward(batch)
                gap = max(gap, float((split - plain).abs().max()))
        return gap


@contextlib.contextmanager
def _eval(model: nn.Module) -> Iterator[None]:
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)
