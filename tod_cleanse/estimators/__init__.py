"""ToD estimators: one base class and thin per-family subclasses."""

from .base import BaseToDClassifier, ToDNetwork
from .mlp import ToDMLPClassifier

__all__ = ["BaseToDClassifier", "ToDNetwork", "ToDMLPClassifier", "ToDBertClassifier",
           "ToDVGGClassifier"]
__all__ += ["ToDTextClassifier", "ToDResNetClassifier", "ToDViTClassifier"]
_REGISTRY_NAMES = {"ToDTextClassifier": "text", "ToDResNetClassifier": "resnet",
                   "ToDViTClassifier": "vit"}


def __getattr__(name: str):
    # BERT and VGG modules are cheap to import (transformers / torchvision are
    # imported inside the estimators), but keep them out of `import tod_cleanse`.
    if name == "ToDBertClassifier":
        from .bert import ToDBertClassifier

        return ToDBertClassifier
    if name == "ToDVGGClassifier":
        from .vgg import ToDVGGClassifier

        return ToDVGGClassifier
    if name in _REGISTRY_NAMES:  # imported on first use, through the model registry
        from .registry import estimator_class

        return estimator_class(_REGISTRY_NAMES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
