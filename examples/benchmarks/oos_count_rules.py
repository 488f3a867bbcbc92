"""Issue 11, rounds 6, 6b and 9: candidate ``"auto"`` count rules scored offline on saved views.

Loads the npz files that ``oos_count.py --save DIR`` (MLP cells) and
``oos_vgg_count.py --save DIR`` (VGG cells) write, one per fit, and scores every rule
of :data:`RULES` on each: the count against the true number of flipped rows (noisy
cells: within +-20%?) or its share of the rows (clean cells: at most 2%?). Nothing is
refitted, so a rule costs milliseconds to try. ``--diagnose`` prints, per fit, how
often each view is off its label on the flipped and on the clean rows (the terms every
rule below is made of).

The views of a fit (``oos_count.save_views``): ``F`` = ``train_proba_`` (the full
network, in-sample), ``O`` = ``oos_proba_`` (out-of-fold members or flipped
sub-networks, temperature-calibrated), ``S`` = ``seen_proba_`` (the row's own
sub-network, in-sample). A row is *off* in a view when the view is confident
(confident learning's per-class threshold ``t_j``, the mean ``p(j|x)`` over the rows
labelled ``j``) of a class other than its given label.

Usage (repository root)::

    nice -n 5 .venv/bin/python examples/benchmarks/oos_count_rules.py /tmp/views \\
        --out examples/benchmarks/results/oos/count_rules
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tod_cleanse.issue_count import (  # noqa: E402
    _calibrated_off_diagonal,
    _confident_classes,
    estimate_issue_count,
)


@dataclass
class Fit:
    """The saved views of one fit."""

    name: str
    family: str
    F: np.ndarray
    O: np.ndarray  # noqa: E741
    S: np.ndarray
    y: np.ndarray
    y_true: np.ndarray
    flipped: np.ndarray
    self_influence: np.ndarray
    cache: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        return self.F.shape[1]

    def confident(self, view: str) -> tuple[np.ndarray, np.ndarray]:
        """``(has_confident, assigned)`` of view ``F``, ``O``, ``S`` or ``M`` (mean of F, O)."""
        if view not in self.cache:
            p = (self.F + self.O) / 2 if view == "M" else getattr(self, view)
            self.cache[view] = _confident_classes(p, self.y)
        return self.cache[view]

    def off(self, view: str) -> np.ndarray:
        has, cls = self.confident(view)
        return has & (cls != self.y)


def load(path: Path) -> Fit:
    z = np.load(path)
    meta = json.loads(str(z["meta"]))
    name = f"{meta['family']}:{meta['cell']}" + (f"@s{meta['seed']}" if meta["seed"] else "")
    f64 = {k: z[k].astype(np.float64) for k in ("train_proba", "oos_proba", "seen_proba")}
    return Fit(name=name, family=meta["family"], F=f64["train_proba"], O=f64["oos_proba"],
               S=f64["seen_proba"], y=z["labels"].astype(np.int64),
               y_true=z["y_true"].astype(np.int64), flipped=z["flipped"].astype(bool),
               self_influence=z["self_influence"])


# ----------------------------------------------------------------------------- rules
def _cal(f: Fit, off: np.ndarray, cls: np.ndarray, counted: np.ndarray) -> int:
    """Calibrated off-diagonal mass: rows ``off`` at ``cls``, the joint over ``counted``."""
    return _calibrated_off_diagonal(f.y, np.where(off, cls, f.y), counted | off, f.k)


def one_view(view: str) -> Callable[[Fit], int]:
    def rule(f: Fit) -> int:
        has, cls = f.confident(view)
        return _cal(f, f.off(view), cls, has)
    return rule


def package(f: Fit) -> int:
    return estimate_issue_count(f.F, f.y, f.O)


def both_same(f: Fit) -> int:
    hf, cf = f.confident("F")
    ho, co = f.confident("O")
    return _cal(f, f.off("F") & f.off("O") & (cf == co), cf, hf | ho)


def lead(view: str, other: str) -> Callable[[Fit], int]:
    """``view`` off its label unless ``other`` is confident of the given label."""
    def rule(f: Fit) -> int:
        hv, cv = f.confident(view)
        ho, co = f.confident(other)
        off = f.off(view) & ~(ho & (co == f.y))
        return _cal(f, off, cv, hv | ho)
    return rule


def raw_both(f: Fit) -> int:
    return int((f.off("F") & f.off("O")).sum())


def either(f: Fit) -> int:
    """Off in either view (the OR), at the full network's class where it is off."""
    hf, cf = f.confident("F")
    ho, co = f.confident("O")
    return _cal(f, f.off("F") | f.off("O"), np.where(f.off("F"), cf, co), hf | ho)


def vote_mean(f: Fit) -> int:
    """The mean of the two single-view calibrated counts."""
    return int(round((one_view("F")(f) + one_view("O")(f)) / 2))


def geo_mean(f: Fit) -> int:
    """The geometric mean of the AND count and the mean of the single-view counts."""
    return int(round(np.sqrt(package(f) * vote_mean(f))))


def min_single(f: Fit) -> int:
    return min(one_view("F")(f), one_view("O")(f))


def cross_thresholds(src: str, dst: str) -> Callable[[Fit], int]:
    """Thresholds ``t_j`` of view ``src`` applied to the probabilities of ``dst``."""
    def rule(f: Fit) -> int:
        ps, pd = getattr(f, src), getattr(f, dst)
        t = np.array([ps[f.y == j, j].mean() if (f.y == j).any() else np.inf
                      for j in range(f.k)])
        conf = np.where(pd >= t[None, :] - 1e-12, pd, -np.inf)
        has, cls = np.isfinite(conf).any(axis=1), conf.argmax(axis=1)
        return _cal(f, has & (cls != f.y), cls, has)
    return rule


def cleanlab_rule(view: str, method: str) -> Callable[[Fit], int]:
    def rule(f: Fit) -> int:
        from cleanlab.count import num_label_issues

        p = (f.F + f.O) / 2 if view == "M" else getattr(f, view)
        p = p / p.sum(axis=1, keepdims=True)
        return int(num_label_issues(f.y, p, estimation_method=method))
    return rule


def soft_off(view: str) -> Callable[[Fit], int]:
    """Sum over rows of the view's probability of a class other than the given label,
    on the rows whose given-label probability is below its class threshold."""
    def rule(f: Fit) -> int:
        p = getattr(f, view)
        py = p[np.arange(len(f.y)), f.y]
        t = np.array([p[f.y == j, j].mean() for j in range(f.k)])
        return int(round(((1 - py) * (py < t[f.y])).sum()))
    return rule


def o_confident(require: str, calibrate: bool = True) -> Callable[[Fit], int]:
    """O confident of a class ``c`` other than the label, and F (not confident) agreeing.

    ``require``: ``"ranks"`` (F ranks ``c`` above the given label), ``"top"`` (F's most
    probable class is ``c``) or ``"not_label"`` (F's most probable class is not the given
    label). The joint counts the rows confident in either view (``calibrate``) or none
    (the raw count).
    """
    def rule(f: Fit) -> int:
        rows = np.arange(len(f.y))
        hf, _ = f.confident("F")
        ho, co = f.confident("O")
        top = f.F.argmax(axis=1)
        agree = {"ranks": f.F[rows, co] > f.F[rows, f.y], "top": top == co,
                 "not_label": top != f.y}[require]
        off = f.off("O") & agree
        if not calibrate:
            return int(off.sum())
        return _cal(f, off, co, hf | ho)
    return rule


def _top_rows(p: np.ndarray, y: np.ndarray, i: int, alpha: float) -> np.ndarray:
    """The ``round(alpha * n_i)`` rows (at least one) of highest ``p[:, i]``; ``n_i`` = the
    rows given label ``i``, so the anchor set scales with the class's size."""
    m = max(int(round(alpha * (y == i).sum())), 1)
    return np.argsort(-p[:, i], kind="stable")[:m]


def _per_class_count(f: Fit, rate: np.ndarray) -> int:
    return int(round((np.bincount(f.y, minlength=f.k) * rate).sum()))


# Anchors chosen by one view, ``T_ii`` read from another (round 9: decoupled anchors).
# Round 6b found Patrini's ``anchor_O97`` biased where O is over-confident at its own top
# rows; the round-9 hypothesis was a winner's curse (the rows whose O over-states
# ``p(i|x)`` are the ones chosen), removed when one view chooses and the other reads. O
# never saw the row, so its reading does not depend on the row's own label. With the same
# view for both it is Patrini's estimate (``anchor_transition``, ``anchor_class_size``).
def anchor_decoupled(select: str, read: str, q: float = 97.0,
                     alpha: float | None = None) -> Callable[[Fit], int]:
    """``T_ii`` = the mean ``read``-view ``p(i|x)`` over the anchors of class ``i`` chosen
    by the ``select`` view: its rows above the ``q``-th percentile of ``p(i|x)`` (or, with
    ``alpha``, its top ``alpha * n_i`` rows); the count is ``sum_i n_i (1 - T_ii)``."""
    def rule(f: Fit) -> int:
        ps, pr = getattr(f, select), getattr(f, read)
        rate = []
        for i in range(f.k):
            rows = (_top_rows(ps, f.y, i, alpha) if alpha is not None
                    else np.flatnonzero(ps[:, i] >= np.percentile(ps[:, i], q)))
            rate.append(1 - pr[rows, i].mean())
        return _per_class_count(f, np.array(rate))
    return rule


def anchor_transition(view: str, q: float = 97.0) -> Callable[[Fit], int]:
    """Anchor-point estimate of the noise transition matrix (Patrini et al., CVPR 2017).

    ``T_ii`` = the mean ``p(i|x)`` over the rows above the ``q``-th percentile of
    ``p(i|x)``; the count is ``sum_i n_i (1 - T_ii)``. Needs ``p`` calibrated to the
    noisy labels (O's temperature).
    """
    return anchor_decoupled(view, view, q)


def anchor_labels(view: str, q: float = 97.0) -> Callable[[Fit], int]:
    """As :func:`anchor_transition`, with ``1 - T_ii`` the share of the anchor rows
    whose given label is not ``i`` (counts instead of probabilities)."""
    def rule(f: Fit) -> int:
        p = getattr(f, view)
        n_per_label = np.bincount(f.y, minlength=f.k)
        rho = np.array([(f.y[p[:, i] >= np.percentile(p[:, i], q)] != i).mean()
                        for i in range(f.k)])
        return int(round((n_per_label * rho).sum()))
    return rule


def dawid_skene(f: Fit, iters: int = 50) -> int:
    """Dawid-Skene EM with three annotators (given label, argmax F, argmax O); the count
    is the posterior mass off the given labels."""
    n, k = f.F.shape
    ann = [np.eye(k)[f.y], np.eye(k)[f.F.argmax(1)], np.eye(k)[f.O.argmax(1)]]
    post = sum(ann) / 3
    for _ in range(iters):
        prior = post.mean(0) + 1e-9
        conf = [post.T @ a + 1e-3 for a in ann]
        conf = [c / c.sum(1, keepdims=True) for c in conf]
        logp = np.log(prior)[None, :] + sum(a @ np.log(c).T for a, c in zip(ann, conf, strict=True))
        post = np.exp(logp - logp.max(1, keepdims=True))
        post /= post.sum(1, keepdims=True)
    return int(round((1 - post[np.arange(n), f.y]).sum()))


def cj_geometric(f: Fit) -> int:
    p = np.sqrt(f.F * f.O)
    return estimate_issue_count(p / p.sum(axis=1, keepdims=True), f.y)


def no_label_support(f: Fit) -> int:
    """Some view off its label, neither confident of the label (XX, XU, UX)."""
    hf, cf = f.confident("F")
    ho, co = f.confident("O")
    off = (f.off("F") | f.off("O")) & ~(hf & (cf == f.y)) & ~(ho & (co == f.y))
    return _cal(f, off, np.where(f.off("F"), cf, co), hf | ho)


def view_ratio_switch(f: Fit) -> int:
    """``cj_F`` where F flags under 0.8x the rows O flags (F the stricter view), else the
    package's two-view count."""
    ratio = f.off("F").sum() / max(f.off("O").sum(), 1)
    return one_view("F")(f) if ratio < 0.8 else package(f)


#: name -> (one-line description, rule)
RULES: dict[str, tuple[str, Callable[[Fit], int]]] = {
    "package": ("both views off their label (round 4; the package's rule)", package),
    "cj_F": ("calibrated confident joint of train_proba_ alone", one_view("F")),
    "cj_O": ("calibrated confident joint of oos_proba_ alone", one_view("O")),
    "cj_S": ("calibrated confident joint of seen_proba_ alone", one_view("S")),
    "cj_mean": ("calibrated confident joint of the mean of F and O", one_view("M")),
    "both_same": ("both views off, naming the same class", both_same),
    "lead_F": ("F off unless O confident of the label", lead("F", "O")),
    "lead_O": ("O off unless F confident of the label", lead("O", "F")),
    "raw_both": ("both views off, uncalibrated", raw_both),
    "either": ("either view off (OR)", either),
    "vote_mean": ("mean of cj_F and cj_O", vote_mean),
    "geo_and_mean": ("geometric mean of package and vote_mean", geo_mean),
    "min_single": ("min of cj_F and cj_O", min_single),
    "t_F_on_O": ("thresholds of F applied to O", cross_thresholds("F", "O")),
    "t_O_on_F": ("thresholds of O applied to F", cross_thresholds("O", "F")),
    "cl_O": ("cleanlab num_label_issues (off_diagonal) on O", cleanlab_rule("O", "off_diagonal")),
    "cl_O_cal": ("cleanlab num_label_issues (off_diagonal_calibrated) on O",
                 cleanlab_rule("O", "off_diagonal_calibrated")),
    "cl_F": ("cleanlab num_label_issues (off_diagonal) on F", cleanlab_rule("F", "off_diagonal")),
    "cl_F_cal": ("cleanlab off_diagonal_calibrated on F",
                 cleanlab_rule("F", "off_diagonal_calibrated")),
    "cl_mean": ("cleanlab off_diagonal on the mean of F and O", cleanlab_rule("M", "off_diagonal")),
    "soft_O": ("sum of 1 - p_O(y) over rows below their label's threshold", soft_off("O")),
    "cj_geo": ("calibrated confident joint of the geometric mean of F and O", cj_geometric),
    "no_label_support": ("a view off, neither view confident of the label",
                         no_label_support),
    "dawid_skene": ("Dawid-Skene EM: given label, argmax F, argmax O as annotators",
                    dawid_skene),
    "anchor_O97": ("anchor-point transition matrix from O (97th percentile)",
                   anchor_transition("O")),
    "anchor_F97": ("anchor-point transition matrix from F (97th percentile)",
                   anchor_transition("F")),
    "anchor_labels_O97": ("share of O's anchor rows labelled otherwise", anchor_labels("O")),
    "o_conf_f_not_label": ("O confident of c != label, F's top class not the label",
                           o_confident("not_label")),
    "o_conf_f_top": ("O confident of c != label, F's top class c", o_confident("top")),
    "o_conf_f_ranks": ("O confident of c != label, F ranks c above the label",
                       o_confident("ranks")),
    "o_conf_f_ranks_raw": ("as o_conf_f_ranks, uncalibrated", o_confident("ranks", False)),
    "ratio_switch": ("cj_F where F flags < 0.8x O's rows, else package", view_ratio_switch),
}


# ----------------------------------------------------------------------------- round 6b
# Anchor-point counts made robust (issue 11, item 3). ``1 - T_ii`` estimated on anchor
# rows of class ``i``; the count is ``sum_i n_i (1 - T_ii)`` (``n_i``: rows given label i).
def anchor_class_size(view: str, alpha: float, labels: bool = False) -> Callable[[Fit], int]:
    """Patrini et al. (CVPR 2017) anchors, sized by the class: the top ``alpha * n_i`` rows
    of ``p(i|x)``; ``1 - T_ii`` = one minus their mean ``p(i|x)`` or (``labels``) the
    share of them given another label."""
    if not labels:
        return anchor_decoupled(view, view, alpha=alpha)

    def rule(f: Fit) -> int:
        p = getattr(f, view)
        rate = np.array([(f.y[_top_rows(p, f.y, i, alpha)] != i).mean() for i in range(f.k)])
        return _per_class_count(f, rate)
    return rule


def anchor_band(view: str, lo: float = 90.0, hi: float = 99.0) -> Callable[[Fit], int]:
    """Patrini's ``T_ii`` as the mean ``p(i|x)`` over a percentile band ``[lo, hi]`` of
    ``p(i|x)`` (drops the over-confident extreme top)."""
    def rule(f: Fit) -> int:
        p = getattr(f, view)
        rate = []
        for i in range(f.k):
            a, b = np.percentile(p[:, i], [lo, hi])
            band = (p[:, i] >= a) & (p[:, i] <= b)
            rate.append(1 - p[band, i].mean())
        return _per_class_count(f, np.array(rate))
    return rule


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def anchor_temperature_top(view: str, q: float = 97.0) -> Callable[[Fit], int]:
    """O re-calibrated at the top: one temperature (Guo et al. 2017) fitted by NLL
    against the given labels on the rows confident of some class (confident learning's
    thresholds), then Patrini's anchor estimate at the ``q``-th percentile."""
    def rule(f: Fit) -> int:
        from scipy.optimize import minimize_scalar

        p = getattr(f, view)
        logit = np.log(np.clip(p, 1e-12, None))
        has, _ = _confident_classes(p, f.y)
        z, yy = logit[has], f.y[has]

        def nll(t: float) -> float:
            lp = np.log(_softmax(z / t)[np.arange(len(yy)), yy] + 1e-300)
            return -float(lp.mean())
        t = minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x
        pc = _softmax(logit / t)
        rate = np.array([1 - pc[pc[:, i] >= np.percentile(pc[:, i], q), i].mean()
                         for i in range(f.k)])
        return _per_class_count(f, rate)
    return rule


def anchor_isotonic(view: str, q: float = 97.0) -> Callable[[Fit], int]:
    """O re-calibrated by isotonic regression (Zadrozny & Elkan 2002) of ``1[y = i]`` on
    ``p(i|x)``, per class, then Patrini's anchor estimate at the ``q``-th percentile."""
    def rule(f: Fit) -> int:
        from sklearn.isotonic import IsotonicRegression

        p = getattr(f, view)
        rate = []
        for i in range(f.k):
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            pc = iso.fit_transform(p[:, i], (f.y == i).astype(float))
            top = p[:, i] >= np.percentile(p[:, i], q)
            rate.append(1 - pc[top].mean())
        return _per_class_count(f, np.array(rate))
    return rule


def best_bin_labels(view: str, alphas: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5),
                    se: float = 0.0) -> Callable[[Fit], int]:
    """Best-bin mixture-proportion estimate (Scott 2015; Ramaswamy et al. 2016): the
    noise rate is the smallest share of rows given another label over nested anchor sets
    (top ``alpha * n_i`` rows of ``p(i|x)`` per class, pooled): a pure anchor set shows
    the flip rate, an impure one adds the view's errors. ``se``: standard errors added to
    each share before the minimum (the confidence term of Scott's estimator)."""
    def rule(f: Fit) -> int:
        p = getattr(f, view)
        best = np.inf
        for a in alphas:
            rows = [_top_rows(p, f.y, i, a) for i in range(f.k)]
            off = np.concatenate([f.y[r] != i for i, r in enumerate(rows)])
            s = off.mean()
            best = min(best, s + se * np.sqrt(s * (1 - s) / len(off)))
        return int(round(best * len(f.y)))
    return rule


def anchor_labels_agree(alpha: float = 0.2) -> Callable[[Fit], int]:
    """Label share on anchors where both views agree: the top ``alpha * n_i`` rows of
    O's ``p(i|x)`` among the rows whose F top class is ``i``."""
    def rule(f: Fit) -> int:
        top_f = f.F.argmax(axis=1)
        rate = []
        for i in range(f.k):
            cand = np.flatnonzero(top_f == i)
            m = max(int(round(alpha * (f.y == i).sum())), 1)
            r = cand[np.argsort(-f.O[cand, i], kind="stable")[:m]]
            rate.append((f.y[r] != i).mean() if len(r) else 0.0)
        return _per_class_count(f, np.array(rate))
    return rule


def mpe_given_label(view: str) -> Callable[[Fit], int]:
    """Mixture proportion of flips in the given-label probability ``q = p(y|x)``
    (Blanchard et al. 2010; Scott 2015): ``pi <= P(q <= t) / P_N(q <= t)`` for every
    ``t``, with the flipped component ``N`` proxied by ``p(c|x)`` at a class ``c`` drawn
    uniformly among the other classes (exact for uniform flips). The estimate is the
    minimum over ``t`` at the deciles of the proxy."""
    def rule(f: Fit) -> int:
        p = getattr(f, view)
        n = len(f.y)
        rng = np.random.default_rng(0)
        q = p[np.arange(n), f.y]
        c = (f.y + rng.integers(1, f.k, size=n)) % f.k
        qn = p[np.arange(n), c]
        ts = np.quantile(qn, np.linspace(0.1, 0.9, 9))
        ratio = [(q <= t).mean() / max((qn <= t).mean(), 1e-12) for t in ts]
        return int(round(min(1.0, min(ratio)) * n))
    return rule


def median_three(f: Fit) -> int:
    """Median of the package's count, Patrini's ``anchor_O97`` and ``best_bin_O``: each
    fails on its own cells (memorised flips, over-confidence at the top, impure anchors),
    so the median is right wherever two of the three are."""
    return int(np.median([package(f), anchor_transition("O")(f), best_bin_labels("O")(f)]))


def anchor_or_labels(f: Fit) -> int:
    """Patrini's mean-probability estimate where O is calibrated at its anchors, else the
    label share: the two agree within a factor 1.2 -> the mean probability; else the
    smaller of ``best_bin_O`` and the package."""
    a, b = anchor_transition("O")(f), best_bin_labels("O")(f)
    return a if max(a, b) <= 1.2 * max(min(a, b), 1) else min(b, package(f))


RULES.update({
    "anchor_O_a03": ("Patrini anchors: top 3% of each class's size, mean p(i|x)",
                     anchor_class_size("O", 0.03)),
    "anchor_O_a10": ("Patrini anchors: top 10% of each class's size, mean p(i|x)",
                     anchor_class_size("O", 0.10)),
    "anchor_O_a30": ("Patrini anchors: top 30% of each class's size, mean p(i|x)",
                     anchor_class_size("O", 0.30)),
    "anchor_band_O": ("Patrini T_ii: mean p(i|x) over the 90th-99th percentile band",
                      anchor_band("O")),
    "anchor_temp_O97": ("O re-tempered on its confident rows, then anchor_O97",
                        anchor_temperature_top("O")),
    "anchor_iso_O97": ("O isotonic-calibrated per class, then anchor_O97", anchor_isotonic("O")),
    "labels_O_a10": ("share labelled otherwise, top 10% of each class's size",
                     anchor_class_size("O", 0.10, labels=True)),
    "labels_O_a30": ("share labelled otherwise, top 30% of each class's size",
                     anchor_class_size("O", 0.30, labels=True)),
    "best_bin_O": ("best-bin MPE: min label share over anchor sets 10/20/30/50% of n_i",
                   best_bin_labels("O")),
    "best_bin_O_se": ("best_bin_O with one standard error added per set",
                      best_bin_labels("O", se=1.0)),
    "best_bin_O_wide": ("best_bin_O over 5/10/20/30/50/70% of n_i",
                        best_bin_labels("O", (0.05, 0.1, 0.2, 0.3, 0.5, 0.7))),
    "labels_agree_a20": ("label share on O's top 20% of n_i among rows F assigns to i",
                         anchor_labels_agree(0.2)),
    "mpe_q_O": ("MPE of flips in O's given-label probability (uniform-flip proxy)",
                mpe_given_label("O")),
    "median_three": ("median of package, anchor_O97, best_bin_O", median_three),
    "anchor_or_labels": ("anchor_O97 if within 1.2x of best_bin_O, else min(best_bin_O, "
                         "package)", anchor_or_labels),
})


def _weighted_quantiles(v: np.ndarray, w: np.ndarray, qs: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    cw = np.cumsum(w[order])
    return v[order][np.minimum(np.searchsorted(cw, qs * cw[-1]), len(v) - 1)]


def mpe_given_label_joint(view: str, prior: float = 1.0, sources: str = "joint",
                          levels: tuple[float, ...] = tuple(np.linspace(0.1, 0.9, 9))
                          ) -> Callable[[Fit], int]:
    """As :func:`mpe_given_label`, with the flipped component of the rows given label
    ``j`` proxied by ``p(j|x)`` over the rows given label ``c``, mixed over the sources
    ``c != j`` by the confident joint of the view (rows labelled ``j`` confidently of
    ``c``; ``prior`` added per cell): class-conditional flips come from the classes the
    view confuses with ``j``. ``pi = min_t P(p(y|x) <= t) / P_N(t)`` at the thresholds
    where ``P_N(t)`` is each of ``levels``. ``sources="anchor"``: the sources mixed by
    ``n_c T_cj``, Patrini's anchor-point transition matrix of the view (97th percentile
    anchors), instead of the confident joint."""
    def rule(f: Fit) -> int:
        p = getattr(f, view)
        n, k = p.shape
        q = p[np.arange(n), f.y]
        n_per = np.bincount(f.y, minlength=k).astype(float)
        if sources == "anchor":
            # Patrini's T_cj (mean p(j|x) over class c's anchors): flips c -> j ~ n_c T_cj
            t_mat = np.stack([p[p[:, c] >= np.percentile(p[:, c], 97)].mean(axis=0)
                              for c in range(k)])
            joint = (n_per[:, None] * t_mat).T  # joint[j, c]
        else:
            has, cls = _confident_classes(p, f.y)
            joint = np.zeros((k, k))
            np.add.at(joint, (f.y[has], cls[has]), 1.0)
        joint = joint + prior
        np.fill_diagonal(joint, 0.0)
        w = joint / joint.sum()  # w[j, c]: share of the flips that go c -> j
        # proxy sample: row x' (label c) at p(j|x'), weight w[j, c] / n_c
        vals = p.T.reshape(-1)  # (j, x') flattened
        wt = (w[:, f.y] / n_per[f.y][None, :]).reshape(-1)
        ts = _weighted_quantiles(vals, wt, np.asarray(levels))
        srt_v = vals[np.argsort(vals, kind="stable")]
        cw = np.cumsum(wt[np.argsort(vals, kind="stable")])
        ratio = []
        for t in ts:
            pn = cw[np.searchsorted(srt_v, t, side="right") - 1]
            ratio.append((q <= t).mean() / max(pn, 1e-12))
        return int(round(min(1.0, min(ratio)) * n))
    return rule


RULES.update({
    "mpe_q_anchor_O": ("MPE of flips in O's given-label probability, sources by n_c T_cj "
                       "(anchor-point T of O)", mpe_given_label_joint("O", 0.0, "anchor")),
    "mpe_q_anchor_O_hi": ("as mpe_q_anchor_O, thresholds at P_N = 30..90%",
                          mpe_given_label_joint("O", 0.0, "anchor",
                                                tuple(np.linspace(0.3, 0.9, 7)))),
    "mpe_q_joint_O": ("MPE of flips in O's given-label probability, sources by O's "
                      "confident joint", mpe_given_label_joint("O")),
    "mpe_q_joint0_O": ("as mpe_q_joint_O, no prior on the joint",
                       mpe_given_label_joint("O", prior=0.0 + 1e-9)),
    "mpe_q_joint_O_lo": ("as mpe_q_joint_O, thresholds at P_N = 5..50%",
                         mpe_given_label_joint("O", levels=(0.05, 0.1, 0.2, 0.3, 0.5))),
})


def median_of(*names: str) -> Callable[[Fit], int]:
    """The median of several rules' counts (the mean of the middle two for an even
    number): right wherever most of them are, whatever the one that fails."""
    def rule(f: Fit) -> int:
        return int(round(np.median([RULES[n][1](f) for n in names])))
    return rule


RULES.update({
    "median_pkg_bb_mpe": ("median of package, best_bin_O, mpe_q_O",
                          median_of("package", "best_bin_O", "mpe_q_O")),
    "median_anc_bb_mpe": ("median of anchor_O97, best_bin_O, mpe_q_O",
                          median_of("anchor_O97", "best_bin_O", "mpe_q_O")),
    "median_pkg_anc_mpe": ("median of package, anchor_O97, mpe_q_O",
                           median_of("package", "anchor_O97", "mpe_q_O")),
    "median_four": ("median of package, anchor_O97, best_bin_O, mpe_q_O",
                    median_of("package", "anchor_O97", "best_bin_O", "mpe_q_O")),
    "median_three_wide": ("median of package, anchor_O97, best_bin_O_wide",
                          median_of("package", "anchor_O97", "best_bin_O_wide")),
})


RULES.update({
    "anchor_FsO97": ("anchors chosen by F (97th pct.), T_ii read from O",
                     anchor_decoupled("F", "O")),
    "anchor_FsO90": ("anchors chosen by F (90th pct.), T_ii read from O",
                     anchor_decoupled("F", "O", q=90.0)),
    "anchor_FsO99": ("anchors chosen by F (99th pct.), T_ii read from O",
                     anchor_decoupled("F", "O", q=99.0)),
    "anchor_FsO_a10": ("anchors: F's top 10% of the class's size, T_ii read from O",
                       anchor_decoupled("F", "O", alpha=0.10)),
    "anchor_FsO_a30": ("anchors: F's top 30% of the class's size, T_ii read from O",
                       anchor_decoupled("F", "O", alpha=0.30)),
    "anchor_SsO97": ("anchors chosen by S (97th pct.), T_ii read from O",
                     anchor_decoupled("S", "O")),
    "anchor_OsF97": ("anchors chosen by O (97th pct.), T_ii read from F",
                     anchor_decoupled("O", "F")),
})


# ----------------------------------------------------------------------------- report
def score(fits: list[Fit], rules: dict) -> list[dict]:
    rows = []
    for f in fits:
        counts = {name: int(fn(f)) for name, (_, fn) in rules.items()}
        rows.append({"fit": f.name, "family": f.family, "n": int(len(f.y)),
                     "n_flipped": int(f.flipped.sum()), "counts": counts})
    return rows


def summary(rows: list[dict], name: str) -> dict:
    """Per rule: noisy fits within +-20% (all, and per family), clean fits at most 2%."""
    out: dict = {"noisy": [0, 0], "families": {}, "clean": [0, 0], "clean_pct": []}
    errors = []
    for r in rows:
        v, nf, n = r["counts"][name], r["n_flipped"], r["n"]
        if nf:
            rel = (v - nf) / nf
            fam = out["families"].setdefault(r["family"], [0, 0])
            for tally in (fam, out["noisy"]):
                tally[0] += abs(rel) <= 0.2
                tally[1] += 1
            errors.append(abs(rel))
        else:
            out["clean"][0] += v / n <= 0.02
            out["clean"][1] += 1
            out["clean_pct"].append(round(100 * v / n, 1))
    out["median_abs_err"] = float(np.median(errors)) if errors else float("nan")
    return out


def markdown(rows: list[dict], rules: dict, source: str = "") -> str:
    names = list(rules)
    clean = [r["fit"] for r in rows if not r["n_flipped"]]
    out = ["# Candidate `\"auto\"` count rules on saved views (issue 11)", "",
           f"Generated by `examples/benchmarks/oos_count_rules.py {source}` ({len(rows)} fits;"
           " F = `train_proba_`, O = `oos_proba_`). Targets: within +-20% of the flipped "
           "rows; at most 2% of the rows on clean labels. Summary, then each fit. Clean "
           f"cells, in order: {', '.join(clean)}.", "",
           "| rule | what | within +-20% | per family | clean <= 2% | clean cells (% of rows) "
           "| median abs. error |", "|---|---|---|---|---|---|---|"]
    for name in names:
        s = summary(rows, name)
        fams = ", ".join(f"{k} {a}/{b}" for k, (a, b) in s["families"].items())
        what = rules[name][0].replace("|", "\\|")
        out.append(f"| `{name}` | {what} | {s['noisy'][0]}/{s['noisy'][1]} | {fams} "
                   f"| {s['clean'][0]}/{s['clean'][1]} | "
                   f"{', '.join(f'{p}' for p in s['clean_pct'])} | {s['median_abs_err']:.1%} |")
    out += ["", "Per fit (count, then its error against the flipped rows, or its share of the "
            "rows on clean cells):", "",
            "| fit | flipped / rows | " + " | ".join(f"`{n}`" for n in names) + " |",
            "|---|---|" + "---|" * len(names)]
    for r in rows:
        nf, n = r["n_flipped"], r["n"]
        cells = []
        for name in names:
            v = r["counts"][name]
            cells.append(f"{v} ({(v - nf) / nf:+.0%})" if nf else f"{v} ({v / n:.1%})")
        out.append(f"| {r['fit']} | {nf} / {n} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def diagnose(f: Fit) -> str:
    fl, cl = f.flipped, ~f.flipped
    parts = [f"{f.name:48s}"]
    for label, v in (("F", f.off("F")), ("O", f.off("O")), ("S", f.off("S")),
                     ("F&O", f.off("F") & f.off("O")), ("F|O", f.off("F") | f.off("O"))):
        parts.append(f"{label}: {v[fl].mean() if fl.any() else float('nan'):.2f}/"
                     f"{v[cl].mean():.3f}")
    acc = lambda p: (p.argmax(1) == f.y_true)[cl].mean()  # noqa: E731
    parts.append(f"acc F/O {acc(f.F):.3f}/{acc(f.O):.3f}")
    return "  ".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("views", type=Path, help="the folder of npz files")
    ap.add_argument("--rules", default=None, help="comma-separated subset of the rules")
    ap.add_argument("--diagnose", action="store_true", help="print each view's off rates")
    ap.add_argument("--out", type=Path, default=None,
                    help="write OUT.md and OUT.json (the tables)")
    args = ap.parse_args(argv)
    fits = [load(p) for p in sorted(args.views.glob("*.npz"))]
    fits.sort(key=lambda f: (f.family, f.name))
    if args.diagnose:
        print("off rate on flipped / clean rows, per view")
        for f in fits:
            print(diagnose(f))
    rules = RULES if args.rules is None else {n: RULES[n] for n in args.rules.split(",")}
    rows = score(fits, rules)
    md = markdown(rows, rules, source=str(args.views))
    print(md)
    if args.out is not None:
        args.out.with_suffix(".md").write_text(md)
        args.out.with_suffix(".json").write_text(json.dumps(
            {"rules": {n: d for n, (d, _) in rules.items()}, "fits": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
