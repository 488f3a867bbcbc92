"""ToDViTClassifier: torchvision's Vision Transformer with turn-over dropout, for images."""

from __future__ import annotations

import math
import os

import torch
from torch import nn

from .._constraints import MEMBER_CONSTRAINTS, StrOptions, int_interval
from ..layers import TurnOverDropout, tod_modules
from ._docs import fill_shared_parameters
from .base import BaseToDClassifier, ToDNetwork
from .vision import (
    ImageInputMixin,
    adapt_first_conv,
    load_local_weights,
    split_network,
    tod_head,
    torchvision_models,
    with_trunk_members,
)

__all__ = ["ToDViTClassifier"]

# arch -> (patch_size, num_layers, num_heads, hidden_dim, mlp_dim), torchvision's presets
_ARCHS = {
    "vit_b_16": (16, 12, 12, 768, 3072),
    "vit_b_32": (32, 12, 12, 768, 3072),
    "vit_l_16": (16, 24, 16, 1024, 4096),
    "vit_l_32": (32, 24, 16, 1024, 4096),
    "vit_h_14": (14, 32, 16, 1280, 5120),
}
_SIZES = ("patch_size", "num_layers", "num_heads", "hidden_dim", "mlp_dim")


class _PatchEmbed(nn.Module):
    """torchvision's ViT input: patches, class token, position embedding, dropout."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.conv_proj = vit.conv_proj
        self.class_token = vit.class_token
        self.pos_embedding = vit.encoder.pos_embedding
        self.dropout = vit.encoder.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)  # (n, patches, hidden)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.dropout(x + self.pos_embedding)


class _ClassToken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


@fill_shared_parameters
class ToDViTClassifier(ImageInputMixin, BaseToDClassifier):
    """Vision Transformer image classifier (torchvision) trained with turn-over dropout [1]_.

    torchvision's ViT (patch embedding, class token, encoder blocks, final
    LayerNorm), sizes from ``arch`` unless overridden, then a bias-free ToD head
    ``ToD -> Linear -> Tanh -> ToD -> Linear`` on the class token, whose weights
    are exactly separated between an instance's sub-network and its flipped one.
    ``tod_last_blocks=k`` also turns the dropouts of the last ``k`` encoder
    blocks (after attention and in the MLP: one mask per instance over the
    hidden units, shared by all tokens) into ToD; attention, LayerNorm and the
    residual stream stay shared (partial separation). Images are padded, centred,
    to a square whose side is a multiple of the patch size; layouts and
    standardisation are those of :class:`ToDVGGClassifier`.

    Parameters
    ----------
    arch : {"vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14"}, default="vit_b_16"
        torchvision preset of the sizes below.
    patch_size, num_layers, num_heads, hidden_dim, mlp_dim : int or None, default=None
        Override the preset (``None`` keeps it); e.g. ``patch_size=4,
        num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64`` is CPU-sized.
    classifier_width : int or None, default=None
        Hidden units of the head; ``None``: ``hidden_dim``; ``0``: a single
        ``ToD -> Linear``.
    tod_last_blocks : int, default=0
        Encoder blocks (from the top) whose dropouts become ToD.
    weights_path : str or path or None, default=None
        A local torchvision checkpoint of a ViT of these sizes (``heads`` is
        ignored); the position embedding is interpolated to the image size.
        Nothing is downloaded.
    augment, data_format, image_shape
        As in :class:`ToDVGGClassifier`.
    %(shared_parameters)s

    Attributes
    ----------
    classes_, module_, train_keys_, instance_keys_, self_influence_, oos_proba_, \
seen_proba_, train_proba_, history_, n_features_in_, image_shape_, mean_, std_
        As in :class:`ToDVGGClassifier`.

    References
    ----------
    .. [1] S. Kobayashi, S. Yokoi, J. Suzuki, K. Inui. *Efficient Estimation of
       Influence of a Training Instance*. SustaiNLP 2020. arXiv:2012.04207.

    Examples
    --------
    >>> import numpy as np
    >>> from tod_cleanse.estimators.vit import ToDViTClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 255, size=(40, 14, 14), dtype=np.uint8)
    >>> y = np.arange(40) % 2
    >>> clf = ToDViTClassifier(patch_size=4, num_layers=1, num_heads=2, hidden_dim=16,
    ...                        mlp_dim=32, max_epochs=1, random_state=0, verbose=0)
    >>> clf.fit(X, y).oos_proba_.shape, clf.score_influence(X[:3], y[:3]).shape
    ((40, 2), (3, 40))
    """

    _parameter_constraints: dict = {
        **BaseToDClassifier._parameter_constraints,
        **MEMBER_CONSTRAINTS,
        "arch": [StrOptions(set(_ARCHS))],
        **{name: [int_interval(1, None, closed="left"), None] for name in _SIZES},
        "classifier_width": [int_interval(0, None, closed="left"), None],
        "tod_last_blocks": [int_interval(0, None, closed="left")],
        "weights_path": [str, os.PathLike, None],
        "augment": ["boolean"],
        "data_format": [StrOptions({"auto", "channels_last", "channels_first"})],
        "image_shape": [tuple, list, None],
    }

    def __init__(
        self,
        *,
        arch: str = "vit_b_16",
        patch_size: int | None = None,
        num_layers: int | None = None,
        num_heads: int | None = None,
        hidden_dim: int | None = None,
        mlp_dim: int | None = None,
        classifier_width: int | None = None,
        tod_last_blocks: int = 0,
        weights_path: str | os.PathLike | None = None,
        augment: bool = False,
        data_format: str = "auto",
        image_shape: tuple[int, ...] | None = None,
        p: float = 0.5,
        inner_p: float = 0.0,
        mask_seed: int = 0,
        mask_groups: int | None = None,
        turn_over: bool = True,
        max_epochs: int = 20,
        batch_size: int = 64,
        lr: float = 1e-3,
        optimizer: str = "adamw",
        weight_decay: float = 0.05,
        lr_schedule: str | None = None,
        warmup_fraction: float = 0.1,
        grad_clip: float | None = 1.0,
        score_batch_size: int | None = None,
        amp: bool | str = "auto",
        device: str = "auto",
        random_state: int | None = None,
        verbose: int = 1,
        oos_folds: int | None = 5,
        oos_width: int = 128,
    ) -> None:
        self.arch = arch
        self.patch_size = patch_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.mlp_dim = mlp_dim
        self.classifier_width = classifier_width
        self.tod_last_blocks = tod_last_blocks
        self.weights_path = weights_path
        self.augment = augment
        self.data_format = data_format
        self.image_shape = image_shape
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
        self.oos_folds = oos_folds
        self.oos_width = oos_width

    def _default_lr_schedule(self) -> str:
        return "linear"

    def _sizes(self) -> dict[str, int]:
        preset = dict(zip(_SIZES, _ARCHS[self.arch], strict=True))
        return {k: int(preset[k] if getattr(self, k) is None else getattr(self, k))
                for k in _SIZES}

    def _target_side(self, h: int, w: int) -> tuple[int, int]:
        patch = self._sizes()["patch_size"]
        side = patch * math.ceil(max(h, w, patch) / patch)
        return side, side

    def _check_params(self) -> None:
        super()._check_params()
        sizes = self._sizes()
        if sizes["hidden_dim"] % sizes["num_heads"]:
            raise ValueError(f"hidden_dim={sizes['hidden_dim']} must be divisible by "
                             f"num_heads={sizes['num_heads']}.")
        if self.tod_last_blocks > sizes["num_layers"]:
            raise ValueError(f"tod_last_blocks={self.tod_last_blocks} exceeds the "
                             f"{sizes['num_layers']} encoder blocks (num_layers).")

    def _torchvision_vit(self, n_classes: int, load_weights: bool) -> nn.Module:
        vt = torchvision_models("vision_transformer")
        sizes = self._sizes()
        channels, side, _ = self._padded_shape()
        vit = vt.VisionTransformer(image_size=side, num_classes=n_classes, **sizes)
        if channels != 3:
            vit.conv_proj = nn.Conv2d(channels, sizes["hidden_dim"], sizes["patch_size"],
                                      stride=sizes["patch_size"])
        if not load_weights or self.weights_path is None:
            return vit
        state = load_local_weights(self.weights_path, type(self).__name__)
        state = {k: v for k, v in state.items() if not k.startswith("heads.")}
        if "conv_proj.weight" in state:
            state["conv_proj.weight"] = adapt_first_conv(state["conv_proj.weight"], channels,
                                                         self.weights_path)
        try:
            if "encoder.pos_embedding" in state:
                state = vt.interpolate_embeddings(side, sizes["patch_size"], state)
            missing, _ = vit.load_state_dict(state, strict=False)
        except (RuntimeError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise ValueError(f"weights_path={str(self.weights_path)!r} does not fit "
                             f"the ViT sizes {sizes}: {first}") from None
        missing = [k for k in missing if not k.startswith("heads.")]
        if missing:
            raise ValueError(f"weights_path={str(self.weights_path)!r} does not fit "
                             f"the ViT sizes {sizes}: missing {', '.join(missing[:3])} ...")
        return vit

    def _build_module(self, n_classes: int) -> ToDNetwork:
        return self._network(n_classes, load_weights=True)

    def _rebuild_module(self) -> ToDNetwork:
        """The fitted shape without reading ``weights_path`` (unpickling loads the weights)."""
        return self._network(len(self.classes_), load_weights=False)

    def _network(self, n_classes: int, load_weights: bool) -> ToDNetwork:
        vit = self._torchvision_vit(n_classes, load_weights)
        sizes = self._sizes()
        tod = dict(p=self.p, seed=self.mask_seed, n_groups=self.mask_groups,
                   inner_p=self.inner_p)
        blocks = list(vit.encoder.layers)
        k = int(self.tod_last_blocks)
        for j, block in enumerate(blocks[len(blocks) - k:]):
            for name, mod in list(block.named_modules()):
                if isinstance(mod, nn.Dropout):
                    parent, _, attr = name.rpartition(".")
                    owner = block.get_submodule(parent) if parent else block
                    setattr(owner, attr, TurnOverDropout(layer_seed=100 + 10 * j + len(
                        tod_modules(block)), **tod))
        width = sizes["hidden_dim"] if self.classifier_width is None else int(
            self.classifier_width)
        flat = [_PatchEmbed(vit), *blocks, vit.encoder.ln, _ClassToken(),
                *tod_head(sizes["hidden_dim"], width, n_classes, tod, activation=nn.Tanh)]
        cut = next(i for i, m in enumerate(flat)
                   if isinstance(m, TurnOverDropout) or tod_modules(m))
        net = split_network(flat, cut)
        return with_trunk_members(net, n_classes, self._padded_shape(),
                                  n_folds=self.oos_folds, width=self.oos_width,
                                  enabled=self.turn_over)

    def _score_batch_size(self) -> int:
        if self.score_batch_size:
            return int(self.score_batch_size)
        return 4096 if not self.tod_last_blocks else 256
