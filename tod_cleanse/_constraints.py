"""Parameter constraints for scikit-learn's ``_parameter_constraints`` machinery.

scikit-learn validates constructor parameters from a class attribute
``_parameter_constraints`` (``Interval``, ``StrOptions``, "boolean", ...). Those
constraint classes live in ``sklearn.utils._param_validation``, which is private
in name but is the documented way for third-party estimators to declare
constraints (imbalanced-learn and other scikit-learn-contrib packages import it
the same way). This module is the only place in tod_cleanse that imports it.

``Interval(Integral, ...)`` accepts ``True`` (a bool is an ``int``); epochs,
batch sizes and counts must not, so :func:`int_interval` rejects booleans.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Literal

import numpy as np
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

__all__ = ["HasMethods", "Interval", "StrOptions", "int_interval", "real_interval",
           "MEMBER_CONSTRAINTS", "STAGE_CONSTRAINTS"]


class _NotBool(Interval):
    """An ``Interval`` that does not take ``True``/``False`` for ``1``/``0``."""

    def is_satisfied_by(self, val: Any) -> bool:
        if isinstance(val, bool | np.bool_):
            return False
        return super().is_satisfied_by(val)

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} (not a bool)" if self.type is Integral else text


def int_interval(left: int | None, right: int | None,
                 closed: Literal["left", "right", "both", "neither"] = "both") -> Interval:
    """An integer range constraint that rejects booleans.

    Examples
    --------
    >>> c = int_interval(1, None, closed="left")
    >>> c.is_satisfied_by(3), c.is_satisfied_by(True), c.is_satisfied_by(0)
    (True, False, False)
    """
    return _NotBool(Integral, left, right, closed=closed)


def real_interval(left: float | None, right: float | None,
                  closed: Literal["left", "right", "both", "neither"] = "both") -> Interval:
    """A real range constraint (ints and floats, not bools; NaN fails every range).

    Examples
    --------
    >>> c = real_interval(0, 1, closed="neither")
    >>> c.is_satisfied_by(0.5), c.is_satisfied_by(True), c.is_satisfied_by(float("nan"))
    (True, False, False)
    """
    return _NotBool(Real, left, right, closed=closed)


#: ``_parameter_constraints`` of the out-of-fold member parameters (``oos_folds``,
#: ``oos_width``) of the families that carry members beyond the MLP.
MEMBER_CONSTRAINTS: dict = {"oos_folds": [None, int_interval(2, None, closed="left")],
                            "oos_width": [int_interval(1, None, closed="left")]}

#: ``_parameter_constraints`` of ``oos_stage`` (the convolutional families: the stage
#: whose output the out-of-fold members read); its range is checked against the
#: network when it is built.
STAGE_CONSTRAINTS: dict = {"oos_stage": [None, int_interval(1, None, closed="left")]}
