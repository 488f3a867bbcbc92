"""Batch cleaning of Parquet datasets: ``tod-cleanse clean``.

Reads a Parquet file, a folder of Parquet files or a hive-partitioned dataset with
:mod:`pyarrow.dataset`, fits one turn-over dropout estimator [1]_ and writes

``DIR/kept/``
    the input rows that stay, file by file (same relative paths, same schema and
    metadata as the input files);
``DIR/dropped/``
    the rows removed: quarantined, never deleted;
``DIR/issues.parquet``
    one row per input row, in scan order: the raw key, signed score (more negative =
    more harmful), rank (1 = most harmful), ``is_issue``, given label, out-of-sample
    predicted label, the out-of-sample probability of the given label and whether
    the row was ``trained`` on;
``DIR/summary.json``
    tool version, arguments, claim holder, counts, parameters, per-stage timings,
    warnings raised during the fit, and the partition check.

The package follows the run's seams:

=================  ==================================================================
:mod:`.source`     the input: sorted files, streamed batches with global row numbers
:mod:`.features`   batch -> estimator input (numeric/vector, text, image columns)
:mod:`.checksum`   order-independent key checksums, combinable across partitions
:mod:`.plan`       parameter and input checks before anything is written
:mod:`.stages`     read, train, score (dataclasses in, dataclasses out)
:mod:`.write`      write kept/dropped/issues per input file, verify the partition
:mod:`.claim`      the exclusive claim on the output folder
:mod:`.commit`     output path rules, atomic publish, commit journal and recovery
:mod:`.clean`      :func:`clean_parquet`, the stages in order
=================  ==================================================================

Safety: the input is only ever read. ``DIR`` is claimed at the start (a second run
fails at once, naming the holder), everything is written to a staging folder beside
it and published by rename after a check, re-read from the written files, that
``kept`` and ``dropped`` partition the input exactly (row counts and
order-independent 64-bit checksums of the keys). At the commit the claim and ``DIR``
are checked again: a folder that appeared meanwhile is never removed. An
interrupted ``overwrite`` commit is undone by the next run (the previous output
comes back). Memory is bounded: every pass streams record batches; training holds
only the (sampled) training rows.

Scores. Rows the model trained on are scored by :class:`~tod_cleanse.ToDCleanser`
(``method``'s formula, see :mod:`tod_cleanse.scores`). Above ``max_train_rows`` the
model trains on a seeded sample and the other rows are scored with the *full*
network, which never saw them: their ``oos_likelihood`` is ``log p_full(y|x)`` and
their ``confident_learning`` margin is computed on ``p_full`` -- the same formulas,
fed with an out-of-sample network, as ``oos_proba_`` (the out-of-fold member or the
flipped sub-network) gives trained rows.

References
----------
.. [1] S. Kobayashi, S. Yokoi, J. Suzuki, K. Inui. *Efficient Estimation of
   Influence of a Training Instance*. SustaiNLP 2020. arXiv:2012.04207.
"""

from .checksum import KeyChecksum, key_checksum
from .clean import clean_parquet, execute
from .demo import export_demo
from .errors import CleanParquetError, OutputChangedError, PartitionCheckError
from .plan import MODELS, ROW_COLUMN, SAMPLED_METHODS, CleanPlan, prepare

__all__ = [
    "CleanParquetError",
    "CleanPlan",
    "KeyChecksum",
    "MODELS",
    "OutputChangedError",
    "PartitionCheckError",
    "ROW_COLUMN",
    "SAMPLED_METHODS",
    "clean_parquet",
    "execute",
    "export_demo",
    "key_checksum",
    "prepare",
]
