"""Tables and plot of ``oos_study.py`` (issue 11). Benchmark-only code."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def full_suite_cv5(full: Path) -> dict[str, dict]:
    """Cell name -> the full suite's 5-fold cleanlab row (``results/full/results.json``)
    as ``find_label_issues`` flagged / precision / recall, for the studies' cells that
    have no ``cv5`` row of their own (same rows, flips and network)."""
    import json

    if not full.exists():
        return {}
    out = {}
    for c in json.loads(full.read_text())["cells"]:
        m = c["methods"].get("cleanlab_cv5")
        if m and "n_flagged" in m:
            out[c["name"]] = {"n_flagged": m["n_flagged"], "precision": m["flagged_precision"],
                              "recall": m["flagged_recall"]}
    return out


def _f(v, nd: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def row_line(r: dict) -> str:
    """One console line per (design, cell)."""
    return (f"[{r['cell']}] {r['design']:10s} flagged {r['n_flagged']:4d} "
            f"P {_f(r['precision'])} R {_f(r['recall'])} APq {_f(r['ap_quality'])} "
            f"acc_clean {r['acc_clean']:.3f} APsi {_f(r.get('ap_self_influence'))} "
            f"auto {r.get('auto')} / {r['n_flipped']} cpu {r['cpu']:.1f}s")


def _count(r: dict) -> int:
    """The package's ``drop_fraction="auto"`` count: ``estimate_issue_count`` on the full
    network's ``train_proba_`` (``cj_full``); CV rows have only their own ``auto``."""
    return r["cj_full"] if r.get("cj_full") is not None else r["auto"]


def _targets(r: dict, cv: dict) -> dict[str, bool]:
    """Which of the issue's targets a design meets on one cell (vs its CV row)."""
    t = {"acc": r["acc_clean"] >= cv["acc_clean"] - 0.02,
         "cost": r["cpu"] <= 0.35 * cv["cpu"]}
    nf = r["n_flipped"]
    if nf:
        t["P/R"] = (r["precision"] >= cv["precision"] - 0.02
                    and r["recall"] >= cv["recall"] - 0.02)
        t["APq"] = r["ap_quality"] >= cv["ap_quality"]
        t["APsi"] = r.get("ap_self_influence", 0) >= cv["ap_quality"]
        t["count"] = abs(_count(r) - nf) <= 0.2 * nf
    else:
        t["count"] = _count(r) <= 0.02 * r["n"]
    return t


def _default_summary(cells: list[str], by: dict) -> list[str]:
    """One line per cell: the package defaults against 5-fold CV and the old defaults."""
    out = ["## Package defaults vs 5-fold CV (and the pre-issue defaults, `base`)\n",
           "| cell | P / R: CV | P / R: default | AP quality: CV / default | "
           "acc clean rows: CV / default | AP self-infl.: base / default | "
           "AP default score: base / default | auto count / flipped | cost ratio |",
           "|---|---|---|---|---|---|---|---|---|"]
    for cell in cells:
        cv, d, b = by.get(("cv5", cell)), by.get(("default", cell)), by.get(("base", cell))
        if cv is None or d is None:
            continue
        b = b or {}
        out.append(
            f"| {cell} | {_f(cv['precision'])} / {_f(cv['recall'])} | "
            f"{_f(d['precision'])} / {_f(d['recall'])} | {_f(cv['ap_quality'])} / "
            f"{_f(d['ap_quality'])} | {cv['acc_clean']:.3f} / {d['acc_clean']:.3f} | "
            f"{_f(b.get('ap_self_influence'))} / {_f(d.get('ap_self_influence'))} | "
            f"{_f(b.get('ap_default'))} / {_f(d.get('ap_default'))} | "
            f"{_count(d)} / {d['n_flipped']} (of {d['n']}) | {d['cpu'] / cv['cpu']:.2f} |")
    return out + [""]


def markdown(data: list[dict], designs: dict) -> str:
    """Per-cell tables (every design, losers included) and a targets summary."""
    cells = list(dict.fromkeys(r["cell"] for r in data))
    by = {(r["design"], r["cell"]): r for r in data}
    order = ["cv5", "cv5-w1024", "cv5-default"] + list(designs)
    order += sorted({r["design"] for r in data} - set(order))  # other seeds: design@sN
    out = ["# Issue 11: one-run out-of-sample view vs 5-fold CV\n",
           "Written by `examples/benchmarks/oos_study.py --report` from `study.json`. "
           "CV = the same MLP (256, 256) trained without ToD (ordinary dropout 0.5), 5 folds. "
           "`cost` = CPU seconds of one process (1 torch thread) for training + scoring, "
           "and its ratio to 5-fold CV in the same run. `auto` = "
           "`estimate_issue_count` on the design's `oos_proba_`; `cj_full` = the same "
           "function on the full network's in-sample `train_proba_`: the count that "
           "`ToDCleanser(drop_fraction='auto')` drops and the one the `count` target "
           "reads (±20% of the flipped rows; ≤ 2% of the rows on clean labels); "
           "`cl_offdiag` = cleanlab's `num_label_issues` on the design's `oos_proba_`; "
           "`offdiag` / `offdiag_full` = rows off the diagonal of the uncalibrated "
           "confident joint on `oos_proba_` / `train_proba_`; `anchor` = an anchor-point "
           "estimate of the noise transition matrix on `oos_proba_` (Patrini et al. 2017). "
           "A `+T` design fits one "
           "temperature on the out-of-sample rows before cleanlab sees them.\n"]
    out += _default_summary(cells, by)
    out.append("## Designs\n")
    out.append("| design | what it changes |")
    out.append("|---|---|")
    for name, (what, _, _) in designs.items():
        out.append(f"| {name} | {what} |")
    summary: dict[str, dict[str, list[bool]]] = {}
    for cell in cells:
        out.append(f"\n## {cell}\n")
        out.append("| design | flagged | precision | recall | AP quality | acc clean rows | "
                   "AP self-infl. | AP default | auto / flipped | cj_full | cl_offdiag | offdiag | "
                   "offdiag_full | anchor | T | "
                   "cost s (ratio) | targets missed |")
        out.append("|---|" + "---|" * 16)
        for name in order:
            r = by.get((name, cell))
            if r is None:
                continue
            seed = name.partition("@")[2]
            cv = by.get(("cv5" + (f"@{seed}" if seed else ""), cell))
            ratio = f" ({r['cpu'] / cv['cpu']:.2f})" if cv and r is not cv else ""
            missed = "–"
            if cv and not name.startswith("cv5"):
                t = _targets(r, cv)
                for k, v in t.items():
                    summary.setdefault(name, {}).setdefault(k, []).append(v)
                missed = ", ".join(k for k, v in t.items() if not v) or "none"
            out.append(
                f"| {name} | {r['n_flagged']} | {_f(r['precision'])} | {_f(r['recall'])} | "
                f"{_f(r['ap_quality'])} | {r['acc_clean']:.3f} | "
                f"{_f(r.get('ap_self_influence'))} | {_f(r.get('ap_default'))} | "
                f"{r.get('auto')} / {r['n_flipped']} | {r.get('cj_full', '–')} | "
                f"{r.get('cl_offdiag', '–')} | {r.get('offdiag', '–')} | "
                f"{r.get('offdiag_full', '–')} | {r.get('anchor', '–')} | "
                f"{_f(r.get('temperature'), 2)} | "
                f"{r['cpu']:.1f}{ratio} | {missed} |")
    out.append("\n## Targets met (cells meeting / cells measured)\n")
    keys = ["P/R", "APq", "acc", "APsi", "count", "cost"]
    out.append("| design | " + " | ".join(keys) + " |")
    out.append("|---|" + "---|" * len(keys))
    for name in order:
        if name not in summary:
            continue
        s = summary[name]
        out.append(f"| {name} | " + " | ".join(
            f"{sum(s[k])}/{len(s[k])}" if k in s else "–" for k in keys) + " |")
    return "\n".join(out) + "\n"


def plot_pr(data: list[dict], path: Path) -> None:
    """Precision and recall of ``find_label_issues``: each design vs CV, per noisy cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [c for c in dict.fromkeys(r["cell"] for r in data)
             if any(r["cell"] == c and r["n_flipped"] for r in data)]
    if not cells:
        return
    cols = min(4, len(cells))
    rows = int(np.ceil(len(cells) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.6 * rows), squeeze=False)
    for ax, cell in zip(axes.flat, cells, strict=False):
        for r in (r for r in data if r["cell"] == cell):
            cv = r["design"].startswith("cv5")
            ax.scatter(r["recall"], r["precision"], marker="*" if cv else "o",
                       s=160 if cv else 30, color="black" if cv else None, zorder=3 if cv else 2)
            ax.annotate(r["design"], (r["recall"], r["precision"]), fontsize=6,
                        xytext=(3, 2), textcoords="offset points")
        ax.set_title(cell, fontsize=9)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(cells):]:
        ax.axis("off")
    fig.suptitle("find_label_issues: one ToD run (dots) vs 5-fold CV (star)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def target_table(data: list[dict], designs: list[str], seed: int = 0) -> str:
    """Issue 11's per-cell targets against ``cv5`` of the same seed, per design.

    A noisy cell passes when ``find_label_issues`` precision and recall are within 0.02
    of CV's, the quality-score AP is at least CV's and the clean-row accuracy within
    0.02; a clean cell when its accuracy is. Each entry: one mark per target (``.``
    met, ``x`` missed; precision, recall, AP, accuracy), then the package's two-view
    ``"auto"`` count / flipped rows.
    """
    suffix = f"@s{seed}" if seed else ""
    by = {(r["design"], r["cell"]): r for r in data}
    cells = [c for c in dict.fromkeys(r["cell"] for r in data) if ("cv5" + suffix, c) in by]
    out = [f"| cell (seed {seed}) | " + " | ".join(designs) + " |",
           "|---|" + "---|" * len(designs)]
    passed = dict.fromkeys(designs, 0)
    counted = dict.fromkeys(designs, 0)
    for cell in sorted(cells):
        cv = by[("cv5" + suffix, cell)]
        line = [cell]
        for d in designs:
            r = by.get((d + suffix, cell))
            if r is None:
                line.append("-")
                continue
            ok = [r["acc_clean"] >= cv["acc_clean"] - 0.02]
            if r["n_flipped"]:
                ok = [r["precision"] >= cv["precision"] - 0.02,
                      r["recall"] >= cv["recall"] - 0.02,
                      r["ap_quality"] >= cv["ap_quality"], *ok]
            passed[d] += all(ok)
            counted[d] += 1
            line.append("".join(".x"[not o] for o in ok)
                        + f" {r.get('two_view', '?')} / {r['n_flipped']}")
        out.append("| " + " | ".join(line) + " |")
    out.append("| all targets met | " + " | ".join(f"{passed[d]} / {counted[d]}"
                                                  for d in designs) + " |")
    return "\n".join(out) + "\n"
