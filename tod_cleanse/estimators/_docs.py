"""The constructor parameters every ToD estimator shares, documented once.

numpydoc's shared-parameter pattern (as scikit-learn does with its docstring
templates): a family's class docstring holds the placeholder line
``%(shared_parameters)s`` inside its ``Parameters`` section, and the class
decorator :func:`fill_shared_parameters` replaces it with the entries below,
each with the default read from that family's own ``__init__`` signature.
"""

from __future__ import annotations

import inspect
import textwrap
from typing import TypeVar

__all__ = ["SHARED_PARAMETERS", "MEMBER_PARAMETERS", "fill_shared_parameters"]

T = TypeVar("T", bound=type)

PLACEHOLDER = "%(shared_parameters)s"

#: name -> (numpydoc type, description), in constructor order.
SHARED_PARAMETERS: dict[str, tuple[str, str]] = {
    "p": ("float in (0, 1)",
          "ToD drop rate: each instance trains a fraction ``1 - p`` of the units of "
          "every ToD layer; its flipped sub-network is the other ``p``."),
    "inner_p": ("float in [0, 1)",
                "Ordinary dropout applied during training inside the instance's own mask."),
    "mask_seed": ("int", "Seed of the key -> mask hash."),
    "mask_groups": ("int >= 2 or None",
                    "If set, instances are hashed into this many groups that share a mask."),
    "turn_over": ("bool",
                  "``False`` trains the same architecture with ordinary dropout (a baseline; "
                  "influence scores are then unavailable)."),
    "max_epochs": ("int >= 1", "Passes over the training data."),
    "batch_size": ("int >= 1", "Training rows per optimisation step."),
    "lr": ("float > 0", "Learning rate."),
    "optimizer": ('{"adam", "adamw", "sgd"}',
                  "Optimiser (SGD with momentum 0.9); weight decay skips biases and norms."),
    "weight_decay": ("float >= 0", "Weight decay of the optimiser."),
    "lr_schedule": ('{"constant", "linear"} or None',
                    "Learning-rate schedule after warm-up; ``None`` picks the family's default."),
    "warmup_fraction": ("float in [0, 1]",
                        "Fraction of the training steps with a linear learning-rate warm-up."),
    "grad_clip": ("float > 0 or None", "Clip the gradient norm to this value."),
    "score_batch_size": ("int >= 1 or None",
                         "(target, training mask) pairs per forward pass in "
                         ":meth:`score_influence`; ``None`` picks the family's default."),
    "amp": ('bool or "auto"', "Mixed precision on CUDA (ignored on the CPU)."),
    "device": ("str or torch.device",
               '``"auto"`` uses CUDA when present; else ``"cpu"``, ``"cuda"``, '
               '``"cuda:1"``... as torch reads it.'),
    "random_state": ("int, RandomState instance or None",
                     "Seeds weight initialisation and batch order "
                     "(:func:`sklearn.utils.check_random_state`)."),
    "verbose": ("int", "``0`` silences the progress bars."),
}

#: The out-of-fold member parameters (the families that carry members), same format.
MEMBER_PARAMETERS: dict[str, tuple[str, str]] = {
    "oos_folds": ("int >= 2 or None",
                  "Fold-structured turn-over dropout for the out-of-sample view "
                  "(:mod:`tod_cleanse.folds`): every instance key is hashed into one of "
                  "``oos_folds`` folds, and one small member network per fold (one hidden "
                  "layer, no weight shared) is trained, in the same run and on the same "
                  "batches, by every fold but its own. ``oos_proba_`` then comes from the "
                  "member of the row's fold, a whole network that never saw the row (as in "
                  "``oos_folds``-fold cross-validation), instead of the flipped "
                  "sub-network. In the image and text families the members read the "
                  "trunk's features, detached (a lower convolutional stage: "
                  "``oos_stage``; a lower encoder layer: ``oos_layer``): the trunk saw "
                  "every row, but the members' loss never reaches it, so the ToD network "
                  "trains as it would without them. ``None``: no members (``oos_proba_`` "
                  "is then the flipped sub-network's)."),
    "oos_width": ("int >= 1", "Hidden units of each out-of-fold member."),
}


def _entries(cls: type, indent: str, doc: str = "") -> str:
    params = inspect.signature(cls.__init__).parameters
    lines: list[str] = []
    for name, (kind, text) in {**SHARED_PARAMETERS, **MEMBER_PARAMETERS}.items():
        if name not in params or f"\n{indent}{name} : " in doc:  # the family documents it
            continue
        default = params[name].default
        head = kind if default is inspect.Parameter.empty else f"{kind}, default={default!r}"
        lines.append(f"{indent}{name} : {head}")
        lines += textwrap.wrap(text, width=88 - len(indent) - 4, break_on_hyphens=False,
                               initial_indent=indent + "    ", subsequent_indent=indent + "    ")
    return "\n".join(lines)


def fill_shared_parameters(cls: T) -> T:
    """Class decorator: replace ``%(shared_parameters)s`` in ``cls.__doc__``.

    The placeholder must stand alone on its line; its indentation is kept. Each
    shared parameter that ``cls.__init__`` accepts gets its entry, with the
    default that ``cls.__init__`` declares, unless the docstring documents it
    itself.

    Examples
    --------
    >>> @fill_shared_parameters
    ... class Demo:
    ...     '''Demo.
    ...
    ...     Parameters
    ...     ----------
    ...     %(shared_parameters)s
    ...     '''
    ...     def __init__(self, *, p=0.5):
    ...         self.p = p
    >>> print(Demo.__doc__.split("----------")[1].strip().splitlines()[0])
    p : float in (0, 1), default=0.5
    """
    doc = cls.__doc__
    if not doc or PLACEHOLDER not in doc:  # python -OO strips docstrings
        return cls
    out = []
    for line in doc.splitlines():
        if line.strip() == PLACEHOLDER:
            out.append(_entries(cls, line[: len(line) - len(line.lstrip())], doc))
        else:
            out.append(line)
    cls.__doc__ = "\n".join(out)
    return cls
