"""The cleanlab plug-in: Datalab issue type, one-run pred_probs, comparison."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch
from cleanlab import Datalab
from cleanlab.datalab.internal import issue_manager_factory
from cleanlab.datalab.internal.issue_manager import IssueManager
from cleanlab.datalab.internal.issue_manager_factory import REGISTRY
from cleanlab.datalab.internal.task import Task
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError

from tod_cleanse import ToDCleanser, ToDMLPClassifier
from tod_cleanse.adapters import cleanlab as tcl
from tod_cleanse.noise import flip_labels
from tod_cleanse.scores import DEFAULT_METHOD, METHODS, cleansing_scores

COLUMNS = [
    "is_tod_influence_issue",
    "tod_influence_score",
    "tod_influence_raw_score",
    "tod_influence_predicted_label",
]
N_NOISY = 15
pytestmark = [
    # cleanlab's own label issue manager calls DataFrame.rename(inplace=True) (pandas 3).
    pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.rename"),
    # plumbing tests train tiny models for 1-3 epochs on purpose
    pytest.mark.filterwarnings("ignore:.*the fit looks unreliable"),
]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models: one intra-op thread is faster and does not fight other processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    """240 rows, 3 well separated classes named by strings, 15 flipped labels."""
    X, y = make_blobs(n_samples=240, centers=3, n_features=6, cluster_std=1.0, random_state=0)
    names = np.array(["ant", "bee", "cat"])
    rng = np.random.default_rng(0)
    idx = rng.choice(240, size=N_NOISY, replace=False)
    y_noisy = y.copy()
    y_noisy[idx] = (y[idx] + rng.integers(1, 3, size=N_NOISY)) % 3
    mask = np.zeros(240, dtype=bool)
    mask[idx] = True
    return X, names[y_noisy], mask


@pytest.fixture(scope="module")
def est():
    return ToDMLPClassifier(hidden_layer_sizes=(32,), max_epochs=12, batch_size=32,
                            random_state=0, verbose=0)


@pytest.fixture(scope="module")
def fitted(data, est):
    X, y, _ = data
    return clone(est).fit(X, y)


def _lab(y) -> Datalab:
    return Datalab(pd.DataFrame({"label": y}), label_name="label", verbosity=0)


@pytest.fixture(scope="module")
def lab_unfitted(data, est):
    """Datalab round trip with an unfitted estimator (trained once inside)."""
    X, y, _ = data
    lab = _lab(y)
    lab.find_issues(issue_types={"tod_influence": {"estimator": est, "features": X}})
    return lab


# ----------------------------------------------------------------- registration
def test_registered_on_import_and_idempotent(capsys):
    registry = REGISTRY[Task.CLASSIFICATION]
    # registered by the import (pytest may also have imported adapters/cleanlab/ under a
    # second module name for its doctests; that twin's class counts as the same manager)
    assert registry["tod_influence"].__qualname__ == "ToDInfluenceIssueManager"
    assert tcl.register_issue_manager() is registry["tod_influence"]
    assert tcl.register_issue_manager() is registry["tod_influence"]
    assert "Overwriting" not in capsys.readouterr().out  # cleanlab prints this on a clash


@pytest.fixture
def register_spy(monkeypatch):
    """Record calls to cleanlab's public register; the registry is restored afterwards."""
    calls = []
    real = issue_manager_factory.register

    def spy(cls, task="classification"):
        calls.append((cls, task))
        return real(cls, task=task)

    monkeypatch.setattr(issue_manager_factory, "register", spy)
    return calls


def test_registration_goes_through_cleanlab_register(register_spy, monkeypatch, data, capsys):
    _, y, mask = data
    monkeypatch.delitem(REGISTRY[Task.CLASSIFICATION], "tod_influence")
    assert tcl.register_issue_manager() is tcl.ToDInfluenceIssueManager
    assert tcl.register_issue_manager() is tcl.ToDInfluenceIssueManager  # idempotent
    assert register_spy == [(tcl.ToDInfluenceIssueManager, "classification")]
    assert REGISTRY[Task.CLASSIFICATION]["tod_influence"] is tcl.ToDInfluenceIssueManager
    assert "Overwriting" not in capsys.readouterr().out
    lab = _lab(y)  # Datalab finds the issue type by name
    lab.find_issues(issue_types={"tod_influence": {"scores": np.where(mask, -5.0, 0.0),
                                                   "threshold": -1.0}})
    np.testing.assert_array_equal(lab.get_issues("tod_influence")["is_tod_influence_issue"],
                                  mask)


def test_registration_replaces_another_manager_of_the_same_name(register_spy, monkeypatch,
                                                                 caplog):
    class OtherManager(IssueManager):
        issue_name = "tod_influence"
        description = "someone else's"

        def find_issues(self, **kwargs):
            raise AssertionError("not called")

    monkeypatch.setitem(REGISTRY[Task.CLASSIFICATION], "tod_influence", OtherManager)
    with caplog.at_level(logging.WARNING):
        assert tcl.register_issue_manager() is tcl.ToDInfluenceIssueManager
    assert register_spy == [(tcl.ToDInfluenceIssueManager, "classification")]
    assert "OtherManager" in caplog.text


# ---------------------------------------------------------------------- Datalab
def test_datalab_round_trip_columns_summary_info(lab_unfitted, data):
    _, y, mask = data
    issues = lab_unfitted.get_issues("tod_influence")
    assert list(issues.columns) == COLUMNS
    assert len(issues) == len(y)
    q = issues["tod_influence_score"].to_numpy()
    raw = issues["tod_influence_raw_score"].to_numpy()
    assert q.min() == 0.0 and q.max() == 1.0
    # lower quality = more negative raw score (monotone map)
    assert np.all(np.diff(q[np.argsort(raw, kind="stable")]) >= 0)
    flagged = issues["is_tod_influence_issue"].to_numpy()
    assert 0 < flagged.sum() < len(y) // 2
    assert (flagged & mask).sum() / flagged.sum() > 0.6  # mostly the flipped rows
    assert set(issues["tod_influence_predicted_label"]) <= {"ant", "bee", "cat"}

    summary = lab_unfitted.get_issue_summary("tod_influence")
    assert summary["num_issues"].iloc[0] == flagged.sum()
    assert summary["score"].iloc[0] == pytest.approx(1 - flagged.sum() / len(y))

    info = lab_unfitted.get_info("tod_influence")
    assert info["method"] == DEFAULT_METHOD
    assert info["training_runs"] == 1
    assert info["num_tod_influence_issues"] == flagged.sum()
    assert info["given_label"] == y.tolist()
    assert isinstance(info["estimator"], ToDMLPClassifier)
    # the scores are scores.cleansing_scores of the estimator trained inside
    fitted = info["estimator"]
    np.testing.assert_allclose(raw, cleansing_scores(
        DEFAULT_METHOD, fitted.y_train_, oos_proba=fitted.oos_proba_,
        seen_proba=fitted.seen_proba_, full_proba=fitted.train_proba_,
        self_influence=fitted.self_influence_))


def test_report_shows_issue_type_with_description(lab_unfitted, capsys):
    lab_unfitted.report(verbosity=1)
    out = capsys.readouterr().out
    assert "tod_influence issues" in out
    assert "turn-over dropout" in out
    assert f"method: {DEFAULT_METHOD}" in out


def test_fitted_estimator_and_scores_paths_agree_with_cleanser(lab_unfitted, data):
    X, y, _ = data
    fitted = lab_unfitted.get_info("tod_influence")["estimator"]
    ref = lab_unfitted.get_issues("tod_influence")

    lab = _lab(y)
    lab.find_issues(issue_types={"tod_influence": {"estimator": fitted}})
    got = lab.get_issues("tod_influence")
    pd.testing.assert_frame_equal(got[COLUMNS], ref[COLUMNS])
    assert lab.get_info("tod_influence")["training_runs"] == 0

    # precomputed scores + the one-run pred_probs give the same flags for the same
    # drop size ("auto" would count issues on pred_probs, the cleanser on the full
    # network's in-sample probabilities, which only the estimator has)
    n_flagged = int(ref["is_tod_influence_issue"].sum())
    lab2 = _lab(y)
    lab2.find_issues(issue_types={"tod_influence": {
        "scores": ref["tod_influence_raw_score"].to_numpy(),
        "pred_probs": tcl.tod_pred_probs(fitted),
        "drop_fraction": (n_flagged + 0.5) / len(ref)}})
    got2 = lab2.get_issues("tod_influence")
    np.testing.assert_array_equal(got2["is_tod_influence_issue"], ref["is_tod_influence_issue"])
    np.testing.assert_array_equal(got2["tod_influence_predicted_label"],
                                  ref["tod_influence_predicted_label"])
    assert lab2.get_info("tod_influence")["method"] == "precomputed"


def test_fitted_path_matches_tod_cleanser_rule(data, est):
    X, y, _ = data
    cl = ToDCleanser(est, method="confident_learning").fit(X, y)
    lab = _lab(y)
    lab.find_issues(issue_types={"tod_influence": {
        "estimator": cl.estimator_, "method": "confident_learning"}})
    issues = lab.get_issues("tod_influence")
    np.testing.assert_array_equal(issues["is_tod_influence_issue"], cl.issues_["is_issue"])
    np.testing.assert_allclose(issues["tod_influence_raw_score"], cl.scores_)
    np.testing.assert_array_equal(lab.get_info("tod_influence")["rank"], cl.issues_["rank"])


def test_estimator_fitted_on_encoded_labels_reports_class_names(data, est):
    X, y, _ = data
    lab = _lab(y)
    enc = clone(est).set_params(max_epochs=2).fit(X, lab.labels)
    lab.find_issues(issue_types={"tod_influence": {
        "estimator": enc, "method": "self_influence", "drop_fraction": 0.1}})
    issues = lab.get_issues("tod_influence")
    assert set(issues["tod_influence_predicted_label"]) <= {"ant", "bee", "cat"}
    assert issues["is_tod_influence_issue"].sum() == 24
    np.testing.assert_allclose(issues["tod_influence_raw_score"], -enc.self_influence_)


def test_scores_only_without_pred_probs(data):
    _, y, mask = data
    lab = _lab(y)
    scores = np.where(mask, -5.0, 0.0) + np.linspace(0, 1, len(y))
    lab.find_issues(issue_types={"tod_influence": {"scores": scores, "threshold": -1.0}})
    issues = lab.get_issues("tod_influence")
    np.testing.assert_array_equal(issues["is_tod_influence_issue"], mask)
    assert issues["tod_influence_predicted_label"].isna().all()


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({}, ValueError, "exactly one of estimator="),
        ({"scores": np.zeros(240), "estimator": "EST"}, ValueError, "got both"),
        ({"estimator": "EST"}, ValueError, "needs features="),
        ({"estimator": "EST", "features": np.zeros((5, 6))}, ValueError, "features has 5 rows"),
        ({"estimator": "EST", "features": "X", "method": "nope"}, ValueError, "method must be"),
        ({"estimator": "EST", "features": "X", "drop_fraction": 1.5}, ValueError,
         "drop_fraction"),
        ({"estimator": "EST", "features": "X", "method": "eval_influence"}, ValueError,
         "eval_set"),
        ({"estimator": object(), "features": "X"}, TypeError, "ToD estimator"),
        ({"scores": np.zeros(3)}, ValueError, r"shape \(240,\)"),
        ({"scores": np.zeros(240)}, ValueError, "needs pred_probs="),
        ({"scores": np.array(["a"] * 240), "threshold": 0.0}, TypeError, "numbers"),
        ({"scores": np.zeros(240), "pred_probs": np.ones((240, 2))}, ValueError,
         r"pred_probs must have shape \(240, 3\)"),
        ({"scores": np.zeros(240), "threshold": float("nan")}, ValueError,
         "threshold must be a finite number"),
        ({"scores": np.zeros(240), "drop_fraction": "lots"}, ValueError,
         "drop_fraction must be 'auto' or a number"),
        ({"scores": np.zeros(240), "threshold": 0.0, "instance_keys": np.arange(240)},
         ValueError, "instance_keys= is only used with an unfitted estimator"),
    ],
)
def test_bad_arguments_raise_before_any_work(data, est, kwargs, exc, match, caplog):
    X, y, _ = data
    swap = {"EST": est, "X": X}
    kwargs = {k: swap[v] if isinstance(v, str) and v in swap else v for k, v in kwargs.items()}
    lab = _lab(y)
    with caplog.at_level(logging.ERROR), pytest.raises(exc, match=match):
        lab.find_issues(issue_types={"tod_influence": kwargs})
    assert "tod_influence" in caplog.text


def test_bad_fitted_estimator_raises(data, fitted, est):
    X, y, _ = data
    with pytest.raises(ValueError, match="fitted on other labels"):
        _lab(y[::-1]).find_issues(issue_types={"tod_influence": {"estimator": fitted}})
    with pytest.raises(ValueError, match="fitted on 240 rows"):
        _lab(y[:100]).find_issues(issue_types={"tod_influence": {"estimator": fitted}})
    with pytest.raises(ValueError, match="turn_over=False"):
        _lab(y).find_issues(issue_types={"tod_influence": {
            "estimator": clone(est).set_params(turn_over=False), "features": X}})


def test_info_shows_the_raw_keys(data, est):
    X, y, _ = data
    keys = np.array([f"row-{i}" for i in range(len(y))])
    lab = _lab(y)
    lab.find_issues(issue_types={"tod_influence": {
        "estimator": clone(est).set_params(max_epochs=1), "features": X, "instance_keys": keys}})
    info = lab.get_info("tod_influence")
    assert info["key"] == keys.tolist()
    # a fitted estimator keeps its keys: the Datalab shows them, as given
    lab2 = _lab(y)
    lab2.find_issues(issue_types={"tod_influence": {"estimator": info["estimator"]}})
    assert lab2.get_info("tod_influence")["key"] == keys.tolist()
    with pytest.raises(ValueError, match="instance_keys= is only used with an unfitted"):
        _lab(y).find_issues(issue_types={"tod_influence": {
            "estimator": info["estimator"], "instance_keys": keys}})
    # precomputed scores: row positions
    lab3 = _lab(y)
    lab3.find_issues(issue_types={"tod_influence": {"scores": np.zeros(len(y)),
                                                    "threshold": 0.0}})
    assert lab3.get_info("tod_influence")["key"] == list(range(len(y)))


def test_failure_during_work_is_visible(data, est, caplog):
    X, y, _ = data
    X_bad = X.copy()
    X_bad[0, 0] = np.nan  # the estimator rejects it inside find_issues
    lab = _lab(y)
    with caplog.at_level(logging.ERROR), pytest.warns(RuntimeWarning, match="tod_influence"):
        lab.find_issues(issue_types={"tod_influence": {"estimator": est, "features": X_bad}})
    assert "issue type 'tod_influence' failed" in caplog.text


# ------------------------------------------------------------------- pred_probs
def test_pred_probs_go_straight_into_cleanlab(data, fitted):
    X, y, mask = data
    labels = tcl.tod_labels(fitted)
    pp = tcl.tod_pred_probs(fitted, labels=labels)
    assert pp.dtype == np.float64 and pp.shape == (240, 3)
    np.testing.assert_allclose(pp.sum(axis=1), 1.0, atol=1e-12)
    pp[:] = 0  # a copy: the estimator is untouched
    assert fitted.oos_proba_.sum() > 0
    pp = tcl.tod_pred_probs(fitted)

    issues = find_label_issues(labels, pp, n_jobs=1)
    assert issues.shape == (240,) and issues.dtype == bool
    assert (issues & mask).sum() >= 0.6 * issues.sum() > 0
    quality = get_label_quality_scores(labels, pp)
    assert quality[mask].mean() < quality[~mask].mean()

    lab = _lab(y)
    np.testing.assert_array_equal(lab.labels, labels)  # same class order as Datalab
    lab.find_issues(pred_probs=tcl.tod_pred_probs(fitted, labels=lab.labels),
                    issue_types={"label": {}})
    assert lab.get_issues("label")["is_label_issue"].sum() > 0


def test_pred_probs_errors(data, fitted, est):
    X, y, _ = data
    with pytest.raises(NotFittedError, match="fit"):
        tcl.tod_pred_probs(clone(est))
    with pytest.raises(TypeError, match="ToD estimator"):
        tcl.tod_pred_probs(object())
    with pytest.raises(ValueError, match="original class values"):
        tcl.tod_pred_probs(fitted, labels=y)
    wrong_order = (tcl.tod_labels(fitted) + 1) % 3
    with pytest.raises(ValueError, match="class order"):
        tcl.tod_pred_probs(fitted, labels=wrong_order)
    with pytest.raises(ValueError, match="one entry per training row"):
        tcl.tod_pred_probs(fitted, labels=tcl.tod_labels(fitted)[:10])
    plain = clone(est).set_params(turn_over=False, max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="turn_over=False"):
        tcl.tod_pred_probs(plain)


# -------------------------------------------------------------------- comparison
def test_noisy_digits_flips_with_the_one_flip_function():
    X, y, mask = tcl.noisy_digits(0.1, random_state=3)
    assert X.shape == (1797, 64) and X.dtype == np.float64
    from sklearn.datasets import load_digits

    y_ref, mask_ref = flip_labels(load_digits().target, 0.1, random_state=3)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(mask, mask_ref)
    assert int(mask.sum()) == 180  # round(0.1 * 1797), every flipped label wrong
    with pytest.raises(ValueError, match="noise_rate must be a number in"):
        tcl.noisy_digits(1.5)


def test_compare_every_row_and_column(data, est, tmp_path):
    X, y, mask = data
    png = tmp_path / "pr.png"
    df = tcl.compare_finders(X, y, est, noise_mask=mask, cv=2, plot=png)
    methods = [m for m in METHODS if m != "eval_influence"]
    finders = [f"tod:{m}" for m in methods] + ["cleanlab:cv2", "cleanlab:tod"]
    assert df.index.tolist() == finders
    assert df.columns.tolist() == (
        ["training_runs", "n_flagged", "wall_time_s", "precision", "recall", "f1", "auroc",
         "ap"] + [f"jaccard:{f}" for f in finders])
    assert df["training_runs"].tolist() == [1] * len(methods) + [2, 1]
    assert (df["wall_time_s"] > 0).all()
    for col in ("precision", "recall", "f1", "auroc", "ap"):
        assert df[col].between(0, 1).all(), col
    assert df.loc["tod:oos_likelihood", "auroc"] > 0.8
    jac = df[[f"jaccard:{f}" for f in finders]].to_numpy()
    np.testing.assert_allclose(np.diag(jac), 1.0)
    np.testing.assert_allclose(jac, jac.T)
    # "auto" flags as many rows as the confident joint, for every ToD method
    assert df.loc[[f"tod:{m}" for m in methods], "n_flagged"].nunique() == 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    text = tcl.format_comparison(df)
    assert text.count("\n| tod:") == 2 * len(methods)
    assert "| Jaccard |" in text


def test_compare_without_mask_and_with_eval_set(data, est):
    X, y, _ = data
    df = tcl.compare_finders(X[:200], y[:200], clone(est).set_params(max_epochs=3), cv=2,
                             methods=["eval_influence"], eval_set=(X[200:], y[200:]))
    assert df.index.tolist() == ["tod:eval_influence", "cleanlab:cv2", "cleanlab:tod"]
    assert df.columns.tolist() == ["training_runs", "n_flagged", "wall_time_s"] + [
        f"jaccard:{f}" for f in df.index]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"cv": 1}, "cv must be"),
        ({"methods": ["nope"]}, "methods must be among"),
        ({"methods": ["eval_influence"]}, "eval_set"),
        ({"noise_mask": np.zeros(3, bool)}, "noise_mask must have shape"),
        ({"noise_mask": np.full(240, 0.5)}, "noise_mask must be boolean"),
        ({"drop_fraction": 2.0}, "drop_fraction"),
    ],
)
def test_compare_bad_arguments(data, est, kwargs, match):
    X, y, _ = data
    with pytest.raises(ValueError, match=match):
        tcl.compare_finders(X, y, est, **kwargs)


def test_compare_checks_the_estimator_and_warns_about_a_plot_without_truth(data, est, tmp_path):
    X, y, _ = data
    with pytest.raises(TypeError, match="estimator must be a ToD estimator"):
        tcl.compare_finders(X, y, object())
    with pytest.raises(ValueError, match="estimator has turn_over=False"):
        tcl.compare_finders(X, y, clone(est).set_params(turn_over=False))
    png = tmp_path / "pr.png"
    with pytest.warns(UserWarning, match="plot= needs noise_mask="):
        tcl.compare_finders(X, y, clone(est).set_params(max_epochs=1), cv=2,
                            methods=["oos_likelihood"], plot=png)
    assert not png.exists()
