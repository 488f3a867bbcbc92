"""tod_cleanse: turn-over dropout influence estimation and training-data cleansing.

Every training instance trains only its own fixed dropout sub-network; the
flipped sub-network never saw it, so the difference of their losses estimates
the instance's influence on any prediction from one training run [1]_.

References
----------
.. [1] S. Kobayashi, S. Yokoi, J. Suzuki, K. Inui. *Efficient Estimation of
   Influence of a Training Instance*. SustaiNLP 2020. arXiv:2012.04207.
"""

import logging

from .cleanser import ToDCleanser
from .estimators import ToDMLPClassifier
from .layers import TurnOverDropout, insert_tod, tod_context
from .report import write_report

__version__ = "0.1.0"

__all__ = [
    "ToDMLPClassifier",
    "ToDBertClassifier",
    "ToDVGGClassifier",
    "ToDTextClassifier",
    "ToDResNetClassifier",
    "ToDViTClassifier",
    "ToDCleanser",
    "TurnOverDropout",
    "insert_tod",
    "tod_context",
    "write_report",
    "__version__",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str):
    if name in ("ToDBertClassifier", "ToDVGGClassifier"):
        from . import estimators

        return getattr(estimators, name)
    if name in ("ToDTextClassifier", "ToDResNetClassifier", "ToDViTClassifier"):
        from . import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
