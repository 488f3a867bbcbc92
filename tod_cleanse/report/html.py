"""The report's HTML: one self-contained page (inline CSS and PNGs, no script, no URL).

Every value taken from the data (labels, keys, texts, feature names, the title)
goes through :func:`html.escape`, so a text row holding ``<script>`` shows as text.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from .collect import ReportData, TestCases
from .content import Content, png_data_uri

__all__ = ["render_html"]

_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px;color:#222;
max-width:1400px}
h1{font-size:1.6em;margin-bottom:4px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;
margin-top:32px}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 7px;vertical-align:middle;text-align:left}
th{background:#f3f3f3}tr.dropped td.lab{color:#b00}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.figs{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;border:1px solid #ddd;padding:6px;background:#fff}
figcaption{font-size:12px;color:#555;text-align:center}
img.thumb,img.big{image-rendering:pixelated;display:block;max-width:none}
img.fig{width:370px;height:auto}
table.cm td{text-align:right;min-width:22px}
pre.txt,code.feat{white-space:pre-wrap;font-size:12px;margin:0;max-width:520px;display:block}
.case{border:1px solid #ccc;border-radius:6px;padding:10px;margin:14px 0;
display:flex;gap:18px;flex-wrap:wrap;align-items:flex-start}
.case .target{min-width:160px}.badge{background:#b00;color:#fff;border-radius:3px;
padding:0 4px;font-size:11px}
.note{color:#666;font-size:13px}
"""

_NONE_DROPPED = '<p class="note">No row is dropped.</p>'


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: float) -> str:
    return f"{value:.4g}" if np.isfinite(value) else _e(value)


def _table(header: Sequence[str], rows: list[str], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "\n".join(rows)
    cls_attr = f' class="{cls}"' if cls else ""
    return f"<table{cls_attr}><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _confusion_html(confusion: np.ndarray, classes: np.ndarray) -> str:
    header = ["given \\ predicted", *[str(c) for c in classes], "total"]
    rows = []
    for a, row in enumerate(confusion):
        cells = "".join(f"<td>{int(v) if v else ''}</td>" for v in row)
        rows.append(f"<tr><th>{_e(classes[a])}</th>{cells}<td>{int(row.sum())}</td></tr>")
    return _table(header, rows, "cm")


def _case_html(t: int, cases: TestCases, train: Content, test: Content | None,
               dropped: np.ndarray) -> str:
    target = (
        f'<div class="target"><strong>test row {int(t)}</strong><br/>'
        f"true: {_e(cases.y_test[t])}<br/>predicted: <span class=\"lab\">"
        f"{_e(cases.pred[t])}</span> (p={float(cases.proba[t].max()):.3f})<br/>"
        f"{test.row(int(t), big=True) if test is not None else ''}</div>"
    )
    blocks = [target]
    table = cases.table
    for kind in ("harmful", "helpful"):
        sub = table[(table["target"] == t) & (table["kind"] == kind)]
        rows = []
        for r in sub.itertuples(index=False):
            badge = ' <span class="badge">dropped</span>' if dropped[r.train_index] else ""
            rows.append(
                f'<tr data-train-key="{_e(r.train_key)}"><td class="num">{r.rank}</td>'
                f"<td>{_e(r.train_key)}{badge}</td><td>{_e(r.train_label)}</td>"
                f'<td class="num">{r.influence:.4g}</td>'
                f"<td>{train.row(int(r.train_index))}</td></tr>"
            )
        body = (_table(["rank", "key", "given label", "influence", "content"], rows)
                if rows else '<p class="note">none</p>')
        blocks.append(f"<div><strong>top {kind}</strong>{body}</div>")
    return f'<div class="case" data-target="{int(t)}">' + "".join(blocks) + "</div>"


def _cases_html(cases: TestCases, train: Content, test: Content | None,
                dropped: np.ndarray) -> str:
    if not len(cases.wrong):
        return '<p class="note">No test example is misclassified.</p>'
    scope = ("Harmful rows are searched among the training rows labelled with the wrongly "
             "predicted label, helpful rows among those labelled with the true label. "
             if cases.paper else "")
    out = [
        '<p class="note">Influence is taken w.r.t. the true label: harmful rows pushed the '
        f"model away from it, helpful rows towards it. {scope}"
        '<span class="badge">dropped</span> marks rows the cleanser drops.</p>'
    ]
    out += [_case_html(t, cases, train, test, dropped) for t in cases.wrong]
    return "\n".join(out)


def _dropped_html(data: ReportData, train: Content, max_rows: int | None) -> tuple[str, int]:
    order = np.flatnonzero(data.dropped)
    order = order[np.argsort(data.scores[order], kind="stable")]
    shown = order if max_rows is None else order[:max_rows]
    classes, labels, oos, pred, keys = (data.classes, data.labels, data.oos, data.oos_pred,
                                        data.keys)
    rows = [
        f'<tr class="dropped" data-key="{_e(keys[i])}">'
        f'<td class="num">{int(data.rank[i])}</td><td>{_e(keys[i])}</td>'
        f'<td class="lab">{_e(classes[labels[i]])}</td><td>{_e(classes[pred[i]])}</td>'
        f'<td class="num">{oos[i, pred[i]]:.3f}</td>'
        f'<td class="num">{oos[i, labels[i]]:.3f}</td>'
        f'<td class="num">{_fmt(data.scores[i])}</td>'
        f"<td>{train.row(int(i))}</td></tr>"
        for i in shown
    ]
    header = ["rank", "key", "given label", "OOS predicted", "OOS p(predicted)",
              "OOS p(given)", "score", "content"]
    more = (f'<p class="note">{len(order) - len(shown)} more dropped rows are not listed '
            f"(max_rows={max_rows}).</p>" if len(shown) < len(order) else "")
    return (_table(header, rows, "rows") if rows else _NONE_DROPPED) + "\n" + more, len(order)


def render_html(data: ReportData, pngs: dict[str, tuple[bytes, str]], train: Content,
                test: Content | None, *, title: str, max_rows: int | None) -> str:
    """The whole page as a string."""
    dropped_html, n_dropped = _dropped_html(data, train, max_rows)
    figs = "\n".join(
        f'<figure><img class="fig" alt="{_e(name)}" src="{png_data_uri(png)}"/>'
        f"<figcaption>{_e(caption)} ({_e(name)}.png)</figcaption></figure>"
        for name, (png, caption) in pngs.items()
    )
    summary = "\n".join(f"<tr><th>{_e(a)}</th><td>{_e(b)}</td></tr>" for a, b in data.summary)
    confusion = (_confusion_html(data.confusion, data.classes) if data.dropped.any()
                 else _NONE_DROPPED)
    cases = ""
    nav_cases = ""
    if data.cases is not None:
        nav_cases = ' <a href="#explanations">misclassified test examples</a> |'
        cases = ('<section id="explanations"><h2>Misclassified test examples: the training '
                 "rows behind them</h2>\n"
                 f"{_cases_html(data.cases, train, test, data.dropped)}\n</section>")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p class="note">Turn-over dropout (Kobayashi et al., SustaiNLP 2020, arXiv:2012.04207):
one training run; each row's out-of-sample prediction comes from the sub-network that never
saw it. Scores are oriented so that more negative = more harmful.</p>
<p class="note">Sections: <a href="#summary">summary</a> | <a href="#figures">figures</a> |
<a href="#confusion">class pairs</a> |{nav_cases} <a href="#dropped">rows to be dropped</a></p>
<section id="summary">
<h2>Summary</h2>
<table class="kv"><tbody>
{summary}
</tbody></table>
</section>
<section id="figures">
<h2>Figures</h2>
<div class="figs">
{figs}
</div>
</section>
<section id="confusion">
<h2>Class pairs of the dropped rows</h2>
<p class="note">Rows: given label; columns: out-of-sample predicted label; cells: dropped rows.
</p>
{confusion}
</section>
{cases}
<section id="dropped">
<h2>Rows to be dropped ({n_dropped}), most harmful first</h2>
{dropped_html}
</section>
</body>
</html>
"""
