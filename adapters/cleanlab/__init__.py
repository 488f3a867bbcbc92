"""cleanlab plug-in: a Datalab issue type, one-run ``pred_probs``, a side-by-side comparison.

Three ways to use turn-over dropout (ToD) [1]_ from cleanlab [2]_, one module each:

* :mod:`~tod_cleanse.adapters.cleanlab.datalab`: ``"tod_influence"``, a Datalab issue
  type (:class:`ToDInfluenceIssueManager`, registered on import of this package
  through cleanlab's ``register``)::

      Datalab(df, label_name="y").find_issues(
          issue_types={"tod_influence": {"estimator": ToDMLPClassifier(), "features": X}})

* :mod:`~tod_cleanse.adapters.cleanlab.pred_probs`: :func:`tod_pred_probs`, the
  out-of-sample probabilities of a fitted ToD estimator (``oos_proba_``: the row's
  out-of-fold member, or the flipped sub-network on each training row) for
  ``cleanlab.filter.find_label_issues``,
  ``cleanlab.rank.get_label_quality_scores`` or ``Datalab.find_issues(pred_probs=...)``,
  in place of K-fold ``cross_val_predict`` (one training instead of K).

* :mod:`~tod_cleanse.adapters.cleanlab.comparison`: :func:`compare_finders`, ToD
  cleansing methods next to cleanlab's ``find_label_issues`` on K-fold
  cross-validated ``pred_probs`` and on the ToD one-run ``pred_probs``, on the same
  data and model family; :func:`format_comparison` and :func:`markdown_table` print
  it (``tod-cleanse compare`` is built on them).

References
----------
.. [1] S. Kobayashi, S. Yokoi, J. Suzuki, K. Inui. *Efficient Estimation of Influence of a
   Training Instance*. SustaiNLP 2020. arXiv:2012.04207.
.. [2] C. Northcutt, L. Jiang, I. Chuang. *Confident Learning: Estimating Uncertainty in
   Dataset Labels*. JAIR 70, 2021.
"""

from .comparison import compare_finders, noisy_digits
from .datalab import ISSUE_NAME, ToDInfluenceIssueManager, register_issue_manager
from .output import format_comparison, markdown_table, plot_pr_curves
from .pred_probs import tod_labels, tod_pred_probs, tod_quality_scores

__all__ = [
    "ISSUE_NAME",
    "ToDInfluenceIssueManager",
    "compare_finders",
    "format_comparison",
    "markdown_table",
    "noisy_digits",
    "plot_pr_curves",
    "register_issue_manager",
    "tod_labels",
    "tod_pred_probs",
    "tod_quality_scores",
]

register_issue_manager()
