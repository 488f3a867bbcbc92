"""Issue 11, round 6: candidate ``"auto"`` count rules scored offline on saved views.

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


def anchor_transition(view: str, q: float = 97.0) -> Callable[[Fit], int]:
    """Anchor-point estimate of the noise transition matrix (Patrini et al., CVPR 2017).

    ``T_ii`` = the mean ``p(i|x)`` over the rows above the ``q``-th percentile of
    ``p(i|x)``; the count is ``sum_i n_i (1 - T_ii)``. Needs ``p`` calibrated to the
    noisy labels (O's temperature).
    """
    def rule(f: Fit) -> int:
        p = getattr(f, view)
        n_per_label = np.bincount(f.y, minlength=f.k)
        t_ii = np.array([p[p[:, i] >= np.percentile(p[:, i], q), i].mean()
                         for i in range(f.k)])
        return int(round((n_per_label * (1 - t_ii)).sum()))
    return rule


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
    out = ["# Candidate `\"auto\"` count rules on saved views (issue 11, round 6)", "",
           f"Generated by `examples/benchmarks/oos_count_rules.py {source}` ({len(rows)} fits;"
           " F = `train_proba_`, O = `oos_proba_`). Targets: within +-20% of the flipped "
           "rows; at most 2% of the rows on clean labels. Summary, then each fit. Clean "
           f"cells, in order: {', '.join(clean)}.", "",
           "| rule | what | within +-20% | per family | clean <= 2% | clean cells (% of rows) "
           "| median abs. error |", "|---|---|---|---|---|---|---|"]
    for name in names:
        s = summary(rows, name)
        fams = ", ".join(f"{k} {a}/{b}" for k, (a, b) in s["families"].items())
        out.append(f"| `{name}` | {rules[name][0]} | {s['noisy'][0]}/{s['noisy'][1]} | {fams} "
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
