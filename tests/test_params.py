"""One validation layer: ``_parameter_constraints`` on the estimators (and the cleanser)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from tod_cleanse import ToDMLPClassifier
from tod_cleanse.estimators import BaseToDClassifier
from tod_cleanse.estimators._docs import SHARED_PARAMETERS

X_OK = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
Y_OK = np.arange(20) % 2
TINY = dict(hidden_layer_sizes=(8,), max_epochs=1, verbose=0, random_state=0)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("max_epochs", True), ("max_epochs", 0), ("max_epochs", 2.0), ("batch_size", False),
        ("p", "abc"), ("p", 0.0), ("p", 1.0), ("inner_p", 1.0), ("mask_groups", 1),
        ("oos_folds", 1), ("oos_folds", True), ("oos_width", 0),
        ("mask_groups", True), ("turn_over", "yes"), ("lr", 0), ("lr", True),
        ("optimizer", "adagrad"), ("weight_decay", -1.0), ("lr_schedule", "cosine"),
        ("warmup_fraction", 1.5), ("grad_clip", 0.0), ("score_batch_size", 0),
        ("amp", "yes"), ("device", 3), ("random_state", "seed"), ("verbose", "loud"),
        ("hidden_layer_sizes", "wide"), ("activation", "swish"), ("standardize", "no"),
        ("mask_seed", 1.5),
    ],
)
def test_bad_parameter_is_named(param, value):
    with pytest.raises(InvalidParameterError, match=f"'{param}' parameter of ToDMLPClassifier"):
        ToDMLPClassifier(**{**TINY, param: value}).fit(X_OK, Y_OK)


def test_bad_device_is_a_value_error_naming_device_before_training():
    est = ToDMLPClassifier(**{**TINY, "device": "bogus"})
    with pytest.raises(ValueError, match="device='bogus' is not a device torch knows"):
        est.fit(X_OK, Y_OK)
    assert not hasattr(est, "module_")


def test_every_parameter_is_declared_and_constructors_are_keyword_only():
    est = ToDMLPClassifier()
    assert set(est.get_params()) == set(ToDMLPClassifier._parameter_constraints)
    assert set(SHARED_PARAMETERS) == set(BaseToDClassifier._parameter_constraints)
    kinds = {p.kind for name, p in inspect.signature(ToDMLPClassifier).parameters.items()}
    assert kinds == {inspect.Parameter.KEYWORD_ONLY}
    with pytest.raises(TypeError):
        ToDMLPClassifier((8,))  # positional: rejected


def test_shared_parameters_are_documented_once_with_each_family_default():
    doc = ToDMLPClassifier.__doc__
    assert "%(shared_parameters)s" not in doc
    assert "max_epochs : int >= 1, default=20" in doc
    assert "batch_size : int >= 1, default=64" in doc
    assert doc.count("warmup_fraction :") == 1
    assert doc.count("oos_folds :") == 1  # the MLP documents its members itself


def test_member_families_document_their_members_once():
    from tod_cleanse import (
        ToDResNetClassifier,
        ToDTextClassifier,
        ToDVGGClassifier,
        ToDViTClassifier,
    )
    from tod_cleanse._constraints import MEMBER_CONSTRAINTS
    from tod_cleanse.estimators._docs import MEMBER_PARAMETERS

    assert set(MEMBER_PARAMETERS) == set(MEMBER_CONSTRAINTS)
    for cls, folds in ((ToDVGGClassifier, 5), (ToDResNetClassifier, 5), (ToDViTClassifier, 5),
                       (ToDTextClassifier, 5)):
        assert set(MEMBER_CONSTRAINTS) <= set(cls._parameter_constraints)
        assert cls.__doc__.count(f"oos_folds : int >= 2 or None, default={folds}") == 1, cls
        assert cls.__doc__.count("oos_width : int >= 1, default=128") == 1, cls


def test_random_state_instance_is_accepted_and_reproducible():
    a = ToDMLPClassifier(**{**TINY, "random_state": np.random.RandomState(3)}).fit(X_OK, Y_OK)
    b = ToDMLPClassifier(**{**TINY, "random_state": np.random.RandomState(3)}).fit(X_OK, Y_OK)
    np.testing.assert_array_equal(a.oos_proba_, b.oos_proba_)


def test_cleanser_declares_and_validates_every_parameter():
    from sklearn.utils.estimator_checks import check_param_validation

    from tod_cleanse import ToDCleanser

    cl = ToDCleanser(ToDMLPClassifier(**TINY), drop_fraction=0.1)
    assert set(cl.get_params(deep=False)) == set(ToDCleanser._parameter_constraints)
    check_param_validation("ToDCleanser", cl)  # each bad value: an error naming it
    with pytest.raises(ValueError, match="drop_fraction must be 'auto' or a number"):
        ToDCleanser(ToDMLPClassifier(**TINY), drop_fraction="half").fit(X_OK, Y_OK)
