"""ToDResNetClassifier: torchvision's ResNet with turn-over dropout, for images."""

from __future__ import annotations

import os
from collections import OrderedDict
from types import SimpleNamespace

from torch import nn

from .._constraints import (
    MEMBER_CONSTRAINTS,
    STAGE_CONSTRAINTS,
    StrOptions,
    int_interval,
    real_interval,
)
from ..layers import TurnOverDropout
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

__all__ = ["ToDResNetClassifier"]

# arch -> (torchvision block class name, blocks per stage)
_ARCHS = {
    "resnet18": ("BasicBlock", (2, 2, 2, 2)),
    "resnet34": ("BasicBlock", (3, 4, 6, 3)),
    "resnet50": ("Bottleneck", (3, 4, 6, 3)),
    "resnet101": ("Bottleneck", (3, 4, 23, 3)),
    "resnet152": ("Bottleneck", (3, 8, 36, 3)),
}
_STEMS = ("imagenet", "small")


def _stages(arch: str, wm: float, in_channels: int, stem: str) -> tuple[nn.Sequential, int]:
    """torchvision's ResNet trunk (stem and the four stages), channels scaled by ``wm``.

    Module names follow torchvision (``conv1``, ``bn1``, ``layer1`` ...), so a
    torchvision checkpoint loads into it. Returns the trunk and its output channels.
    """
    resnet = torchvision_models("resnet")
    block_name, blocks = _ARCHS[arch]
    block = getattr(resnet, block_name)
    widths = [max(1, round(c * wm)) for c in (64, 128, 256, 512)]
    # ResNet._make_layer reads these attributes of the model it builds.
    builder = SimpleNamespace(inplanes=widths[0], dilation=1, groups=1, base_width=64,
                              _norm_layer=nn.BatchNorm2d)
    mods: OrderedDict[str, nn.Module] = OrderedDict()
    if stem == "imagenet":
        mods["conv1"] = nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False)
    else:  # small images: 3x3, stride 1, no max-pool
        mods["conv1"] = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
    mods["bn1"] = nn.BatchNorm2d(widths[0])
    mods["relu"] = nn.ReLU(inplace=True)
    if stem == "imagenet":
        mods["maxpool"] = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    for i, (planes, n) in enumerate(zip(widths, blocks, strict=True)):
        mods[f"layer{i + 1}"] = resnet.ResNet._make_layer(builder, block, planes, n,
                                                         stride=1 if i == 0 else 2)
    trunk = nn.Sequential(mods)
    for m in trunk.modules():  # torchvision's initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return trunk, widths[3] * block.expansion


@fill_shared_parameters
class ToDResNetClassifier(ImageInputMixin, BaseToDClassifier):
    """ResNet image classifier (torchvision) trained with turn-over dropout [1]_.

    torchvision's ResNet stem and residual stages (its ``BasicBlock`` /
    ``Bottleneck``), channels scaled by ``width_multiplier``, global average
    pooling, then a bias-free ToD head
    ``ToD -> Linear -> ReLU -> ToD -> Linear``. The head's weights are exactly
    separated between an instance's sub-network and its flipped one; the
    convolution stages and batch norm are shared (partial separation, as in
    VGG). ``tod_last_stage=True`` adds a channel-wise ToD layer after every
    block of the last stage. Image layouts, standardisation and padding of
    images under 32 pixels are those of :class:`ToDVGGClassifier`.

    Parameters
    ----------
    arch : {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}, \
default="resnet18"
    width_multiplier : float, default=1.0
        Scales every stage's channels (``0.125``: 8..64 for ResNet-18), for CPU runs.
    classifier_width : int or None, default=None
        Hidden units of the head; ``None``: as many as the pooled features; ``0``:
        a single ``ToD -> Linear`` (torchvision's ``fc`` layout).
    stem : {"imagenet", "small"}, default="imagenet"
        ``"imagenet"``: 7x7 stride-2 convolution and max-pool (what checkpoints
        expect); ``"small"``: one 3x3 stride-1 convolution (CIFAR-style, 16x the
        compute of the first stage).
    tod_last_stage : bool, default=False
        Also a channel-wise ToD layer after every residual block of the last stage
        (more of the network separated; the trunk then ends one stage lower).
    weights_path : str or path or None, default=None
        A local checkpoint (a torchvision ``resnet18-*.pth`` state dict, which
        needs ``width_multiplier=1`` and ``stem="imagenet"``) for the stem and
        stages; ``fc`` is ignored. Grey images use the sum of the RGB first-layer
        kernels. Nothing is downloaded.
    augment, data_format, image_shape
        As in :class:`ToDVGGClassifier`.
    oos_stage : int or None, default=2
        Residual stage (1-4: ``layer1`` .. ``layer4``) whose output the out-of-fold
        members read, detached and average-pooled to at most 8x8; ``None``: the
        trunk's output (the input of the first ToD layer; what models saved before
        this parameter existed use). As in :class:`ToDVGGClassifier`: on Fashion-MNIST
        4k (the setting of ``examples/fashion_mnist_resnet.py``) members on stage 2
        match 5-fold cross-validation's recall, where members on the trunk's output
        miss it by 0.04-0.05 (``examples/benchmarks/results/oos/families.md``). Must
        lie below the lowest ToD layer (``tod_last_stage`` puts ToD into stage 4).
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
    >>> from tod_cleanse.estimators.resnet import ToDResNetClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 255, size=(40, 16, 16), dtype=np.uint8)
    >>> y = np.arange(40) % 2
    >>> clf = ToDResNetClassifier(width_multiplier=1 / 16, max_epochs=1, optimizer="adam",
    ...                           lr=1e-2, weight_decay=0.0, random_state=0, verbose=0)
    >>> clf.fit(X, y).oos_proba_.shape, clf.score_influence(X[:3], y[:3]).shape
    ((40, 2), (3, 40))
    """

    _min_side = 32  # five stride-2 reductions need at least 32 pixels per side
    #: ``method="auto"`` (:func:`tod_cleanse.scores.resolve_method`): the given label's
    #: log-margin in both views; it ranks flipped labels above ``full_likelihood`` on
    #: every image cell measured (``examples/benchmarks/results/scores/``).
    default_method = "two_view_margin"
    _params_added = {"oos_stage": None}  # saved before it existed: members on the trunk

    _parameter_constraints: dict = {
        **BaseToDClassifier._parameter_constraints,
        **MEMBER_CONSTRAINTS,
        **STAGE_CONSTRAINTS,
        "arch": [StrOptions(set(_ARCHS))],
        "width_multiplier": [real_interval(0, None, closed="neither")],
        "classifier_width": [int_interval(0, None, closed="left"), None],
        "stem": [StrOptions(set(_STEMS))],
        "tod_last_stage": ["boolean"],
        "weights_path": [str, os.PathLike, None],
        "augment": ["boolean"],
        "data_format": [StrOptions({"auto", "channels_last", "channels_first"})],
        "image_shape": [tuple, list, None],
    }

    def __init__(
        self,
        *,
        arch: str = "resnet18",
        width_multiplier: float = 1.0,
        classifier_width: int | None = None,
        stem: str = "imagenet",
        tod_last_stage: bool = False,
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
        batch_size: int = 128,
        lr: float = 0.05,
        optimizer: str = "sgd",
        weight_decay: float = 5e-4,
        lr_schedule: str | None = None,
        warmup_fraction: float = 0.0,
        grad_clip: float | None = None,
        score_batch_size: int = 4096,
        amp: bool | str = "auto",
        device: str = "auto",
        random_state: int | None = None,
        verbose: int = 1,
        oos_folds: int | None = 5,
        oos_width: int = 128,
        oos_stage: int | None = 2,
    ) -> None:
        self.arch = arch
        self.width_multiplier = width_multiplier
        self.classifier_width = classifier_width
        self.stem = stem
        self.tod_last_stage = tod_last_stage
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
        self.oos_stage = oos_stage

    def _default_lr_schedule(self) -> str:
        return "linear"

    def _load_weights(self, trunk: nn.Sequential) -> None:
        state = load_local_weights(self.weights_path, type(self).__name__)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        if "conv1.weight" in state:
            state["conv1.weight"] = adapt_first_conv(state["conv1.weight"],
                                                     self.image_shape_[0], self.weights_path)
        try:
            trunk.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise ValueError(
                f"weights_path={str(self.weights_path)!r} does not fit arch={self.arch!r}, "
                f"width_multiplier={self.width_multiplier!r}, stem={self.stem!r}: {first}"
            ) from None

    def _build_module(self, n_classes: int) -> ToDNetwork:
        return self._network(n_classes, load_weights=True)

    def _rebuild_module(self) -> ToDNetwork:
        """The fitted shape without reading ``weights_path`` (unpickling loads the weights)."""
        return self._network(len(self.classes_), load_weights=False)

    def _network(self, n_classes: int, load_weights: bool) -> ToDNetwork:
        trunk, c_out = _stages(self.arch, float(self.width_multiplier), self.image_shape_[0],
                               self.stem)
        if load_weights and self.weights_path is not None:
            self._load_weights(trunk)
        tod = dict(p=self.p, seed=self.mask_seed, n_groups=self.mask_groups,
                   inner_p=self.inner_p)
        width = c_out if self.classifier_width is None else int(self.classifier_width)
        flat: list[nn.Module] = []
        ends: list[int] = []  # index of each stage's last block
        for name, mod in trunk.named_children():
            if name == "layer4" and self.tod_last_stage:
                for j, block in enumerate(mod):
                    flat += [block, TurnOverDropout(dim=1, layer_seed=100 + j, **tod)]
            elif name.startswith("layer"):
                flat += list(mod)
            else:
                flat.append(mod)
            if name.startswith("layer"):
                ends.append(len(flat) - 1 - (name == "layer4" and self.tod_last_stage))
        flat += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1), *tod_head(c_out, width, n_classes, tod)]
        cut = next(i for i, m in enumerate(flat) if isinstance(m, TurnOverDropout))
        net = split_network(flat, cut, ends=ends, stage=self.oos_stage
                            if self.oos_folds and self.turn_over else None)
        return with_trunk_members(net, n_classes, self._padded_shape(),
                                  n_folds=self.oos_folds, width=self.oos_width,
                                  enabled=self.turn_over)
