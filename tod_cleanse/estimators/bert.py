"""``ToDBertClassifier``: the historical name of ``ToDTextClassifier`` (same class).

The estimator now takes any encoder that ``AutoModelForSequenceClassification``
loads (BERT, RoBERTa, DistilBERT, DeBERTa-v2/v3, ELECTRA, ModernBERT ...); this
module keeps ``from tod_cleanse.estimators.bert import ToDBertClassifier``
working.
"""

from .text import ToDBertClassifier, ToDTextClassifier

__all__ = ["ToDBertClassifier", "ToDTextClassifier"]
