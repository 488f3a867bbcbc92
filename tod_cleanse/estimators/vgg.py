"""ToDVGGClassifier: torchvision's VGG with turn-over dropout, for images."""

from __future__ import annotations

from torch import nn

from .._constraints import (
    MEMBER_CONSTRAINTS,
    STAGE_CONSTRAINTS,
    StrOptions,
    int_interval,
    real_interval,
)
from ..layers import TurnOverDropout, insert_tod
from ._docs import fill_shared_parameters
from .base import BaseToDClassifier, ToDNetwork
from .vision import ImageInputMixin, split_network, torchvision_models, with_trunk_members

__all__ = ["ToDVGGClassifier"]

# arch -> (torchvision configuration letter, batch norm)
_ARCHS = {
    "vgg11": ("A", False), "vgg11_bn": ("A", True),
    "vgg13": ("B", False), "vgg13_bn": ("B", True),
    "vgg16": ("D", False), "vgg16_bn": ("D", True),
    "vgg19": ("E", False), "vgg19_bn": ("E", True),
}


@fill_shared_parameters
class ToDVGGClassifier(ImageInputMixin, BaseToDClassifier):
    """VGG image classifier (torchvision) trained with turn-over dropout [1]_.

    Network: torchvision's VGG convolution stack (``make_layers`` on the
    configuration of ``arch``, channels scaled by ``width_multiplier``, first
    convolution adapted to the number of image channels), global average
    pooling, then the VGG classifier block
    ``Linear -> ReLU -> ToD -> Linear -> ReLU -> ToD -> Linear (no bias)``.

    Where ToD sits, what is separated and what is shared
        The two dropout sites of VGG's classifier block are turn-over dropout
        layers, so the classifier block below the output is split into one
        sub-network per instance mask; the middle ``Linear`` has its input and
        output masked and the output layer has no bias, so their flipped
        parameters never receive a gradient from the instance (exact
        separation, with ``optimizer="adam"`` and ``weight_decay=0``; momentum
        and weight decay move every parameter). The convolution stack, batch
        norm and first ``Linear`` are shared by all sub-networks (partial
        separation, as in [1]_). ``tod_conv_layers=k`` also puts a channel-wise
        ToD layer (``dim=1``) after each of the last ``k`` convolutions, which
        separates more of the network at the price of smaller sub-networks and
        a costlier influence computation (the shared trunk then ends lower).
        The out-of-fold members (``oos_folds``) read, detached, the output of
        convolutional stage ``oos_stage`` (a stage ends with a max-pool).

    Everything below the lowest ToD layer is the mask-independent *trunk*:
    :meth:`score_influence` computes it once per target and reuses it for every
    training mask.

    Images
        ``X`` may be ``(N, H, W)`` (grey), ``(N, H, W, C)`` or ``(N, C, H, W)``,
        uint8 (read as ``/255``) or float, or a 2-D array of flattened images
        ``(N, H*W)`` (square grey images; set ``image_shape`` otherwise). Channels
        are standardised with the training mean and standard deviation. Images
        smaller than 32 pixels per side (e.g. 28x28 Fashion-MNIST) are
        zero-padded, centred, to 32 after standardisation, so the five VGG
        max-pools always leave at least one pixel; nothing is interpolated.
        Predictions need the same image size and channels as ``fit``.

    Parameters
    ----------
    arch : {"vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", \
"vgg19_bn"}, default="vgg11_bn"
        torchvision VGG configuration.
    width_multiplier : float, default=1.0
        Scales every convolution's channels (``0.125`` turns 64..512 into 8..64),
        which makes small images and CPU runs practical.
    classifier_width : int or None, default=None
        Units of the two hidden classifier layers (the ToD layers). ``None``:
        ``max(16, round(512 * width_multiplier))``.
    tod_conv_layers : int, default=0
        Number of top convolutions followed by a channel-wise ToD layer.
    augment : bool, default=False
        Random horizontal flips and random 4-pixel-shift crops during training.
        Keys (hence masks) belong to the instance, not to the augmented view.
    data_format : {"auto", "channels_last", "channels_first"}, default="auto"
        Layout of 4-D ``X``; ``"auto"`` decides from which axis has at most 4
        entries and raises if both could.
    image_shape : tuple of int or None, default=None
        ``(H, W)`` or ``(C, H, W)`` to reshape a 2-D ``X`` of flattened images.
    oos_stage : int or None, default=2
        Convolutional stage (1-5: the five max-pooled blocks) whose output the
        out-of-fold members read, detached and average-pooled to at most 8x8;
        ``None``: the trunk's output (the input of the first ToD layer; what models
        saved before this parameter existed use). The trunk trains on every row,
        and its upper layers memorise them: members on stage 2 match 5-fold
        cross-validation's precision, recall and average precision on the four
        Fashion-MNIST 10k cells, where members on the trunk's output miss recall
        by 0.06-0.20 (``examples/benchmarks/results/oos/families.md``). Must lie below the
        lowest ToD layer (``tod_conv_layers``).
    %(shared_parameters)s

    Attributes
    ----------
    classes_, module_, optimizer_, device_, train_keys_, y_train_, self_influence_,
    oos_proba_, seen_proba_, train_proba_, history_ : see
    :class:`~tod_cleanse.estimators.base.BaseToDClassifier`.
    n_features_in_ : int
        Values per image (``C * H * W``).
    image_shape_ : tuple of int
        ``(C, H, W)`` of the training images, before padding.
    mean_, std_ : ndarray of shape (C,)
        Per-channel standardisation statistics.

    References
    ----------
    .. [1] S. Kobayashi, S. Yokoi, J. Suzuki, K. Inui. *Efficient Estimation of
       Influence of a Training Instance*. SustaiNLP 2020. arXiv:2012.04207.

    Examples
    --------
    >>> import numpy as np
    >>> from tod_cleanse import ToDVGGClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 255, size=(40, 16, 16), dtype=np.uint8)
    >>> y = np.arange(40) % 2
    >>> X[y == 1, 4:12, 4:12] = 255
    >>> clf = ToDVGGClassifier(width_multiplier=1 / 16, max_epochs=3, optimizer="adam",
    ...                        lr=1e-2, weight_decay=0.0, random_state=0, verbose=0)
    >>> clf.fit(X, y).self_influence_.shape, clf.oos_proba_.shape
    ((40,), (40, 2))
    >>> clf.score_influence(X[:3], y[:3]).shape
    (3, 40)
    """

    _parameter_constraints: dict = {
        **BaseToDClassifier._parameter_constraints,
        **MEMBER_CONSTRAINTS,
        **STAGE_CONSTRAINTS,
        "arch": [StrOptions(set(_ARCHS))],
        "width_multiplier": [real_interval(0, None, closed="neither")],
        "classifier_width": [int_interval(2, None, closed="left"), None],
        "tod_conv_layers": [int_interval(0, None, closed="left")],
        "augment": ["boolean"],
        "data_format": [StrOptions({"auto", "channels_last", "channels_first"})],
        "image_shape": [tuple, list, None],
    }

    def __init__(
        self,
        *,
        arch: str = "vgg11_bn",
        width_multiplier: float = 1.0,
        classifier_width: int | None = None,
        tod_conv_layers: int = 0,
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
        self.tod_conv_layers = tod_conv_layers
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

    _min_side = 32  # five 2x2 max-pools need at least 32 pixels per side
    #: ``method="auto"`` (:func:`tod_cleanse.scores.resolve_method`): the given label's
    #: log-margin in both views; it ranks flipped labels above ``full_likelihood`` on
    #: every image cell measured (``examples/benchmarks/results/scores/``).
    default_method = "two_view_margin"
    _params_added = {"oos_stage": None}  # saved before it existed: members on the trunk
    _tap_grid = 8  # oos_stage: largest spatial size the members read (benchmarks vary it)

    def _default_lr_schedule(self) -> str:
        return "linear"

    # ---------------------------------------------------------------- network
    def _build_module(self, n_classes: int) -> ToDNetwork:
        vgg = torchvision_models("vgg")
        letter, batch_norm = _ARCHS[self.arch]
        wm = float(self.width_multiplier)
        cfg = [v if v == "M" else max(1, round(int(v) * wm)) for v in vgg.cfgs[letter]]
        n_convs = sum(v != "M" for v in cfg)
        k_conv = self.tod_conv_layers
        if k_conv > n_convs:
            raise ValueError(
                f"tod_conv_layers must be an integer in [0, {n_convs}] for arch={self.arch!r}, "
                f"got {k_conv!r}."
            )
        width = self.classifier_width
        if width is None:
            width = max(16, round(512 * wm))
        in_channels = self.image_shape_[0]
        c_out = cfg[-2]  # last conv before the final max-pool
        # torchvision's VGG feature stack and its initialisation (building
        # torchvision's VGG object itself would allocate a 4096 x 25088 classifier).
        features = vgg.make_layers(cfg, batch_norm=batch_norm)
        if in_channels != features[0].in_channels:
            features[0] = nn.Conv2d(in_channels, features[0].out_channels, 3, padding=1)
        for m in features.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Global average pooling: small images end at 1x1 after the five pools.
        avgpool = nn.AdaptiveAvgPool2d(1)
        classifier = nn.Sequential(
            nn.Linear(c_out, width), nn.ReLU(True), nn.Dropout(self.p),
            nn.Linear(width, width), nn.ReLU(True), nn.Dropout(self.p),
            # No bias: a bias is shared by every sub-network and would break the
            # exact separation of the classifier block.
            nn.Linear(width, n_classes, bias=False),
        )
        # PyTorch's default Linear initialisation: torchvision's N(0, 0.01) suits
        # 4096-unit layers but starves the narrow classifiers used here of signal.
        common = dict(p=self.p, seed=self.mask_seed, n_groups=self.mask_groups,
                      inner_p=self.inner_p)
        insert_tod(classifier, **common)
        features = list(features)
        if k_conv:
            relu_pos = [i for i, m in enumerate(features) if isinstance(m, nn.ReLU)]
            for j, pos in reversed(list(enumerate(relu_pos[-k_conv:]))):
                features.insert(pos + 1, TurnOverDropout(dim=1, layer_seed=100 + j, **common))
        flat = [*features, avgpool, nn.Flatten(1), *classifier]
        cut = next(i for i, m in enumerate(flat) if isinstance(m, TurnOverDropout))
        net = split_network(flat, cut, stage=self.oos_stage if self.oos_folds and self.turn_over
                            else None, grid=self._tap_grid,
                            ends=[i for i, m in enumerate(flat) if isinstance(m, nn.MaxPool2d)])
        return with_trunk_members(net, n_classes, self._padded_shape(),
                                  n_folds=self.oos_folds, width=self.oos_width,
                                  enabled=self.turn_over)
