"""The demo data of ``tod-cleanse clean --export-demo``: digits with seeded label noise."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tod_cleanse.noise import flip_labels

__all__ = ["export_demo"]


def export_demo(path: str | os.PathLike, noise: float = 0.1, seed: int = 0,
                n_rows: int | None = None) -> Path:
    """Write the demo data (scikit-learn digits with seeded label noise) as Parquet.

    Columns: ``id`` (int64), ``pixels`` (fixed-size list of 64 float32), ``label``
    (the noisy label, int64) and ``true_label`` (the clean one, for evaluation only;
    never pass it as a feature). The noise is :func:`tod_cleanse.noise.flip_labels`.

    Parameters
    ----------
    path : path
        Parquet file to write (an existing file is replaced).
    noise : float, default=0.1
        Fraction of rows whose label is flipped to another class, in [0, 1).
    seed : int, default=0
    n_rows : int, optional
        Use only the first ``n_rows`` digits.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile, os
    >>> import pyarrow.parquet as pq
    >>> p = export_demo(os.path.join(tempfile.mkdtemp(), "digits.parquet"))
    >>> t = pq.read_table(p)
    >>> t.num_rows, t.column_names
    (1797, ['id', 'pixels', 'label', 'true_label'])
    >>> sum(a != b for a, b in zip(t["label"].to_pylist(), t["true_label"].to_pylist()))
    180
    """
    from sklearn.datasets import load_digits

    if isinstance(noise, bool) or not isinstance(noise, int | float) or not 0 <= noise < 1:
        raise ValueError(f"noise must be a number in [0, 1), got {noise!r}.")
    X, y = load_digits(return_X_y=True)
    if n_rows is not None:
        X, y = X[:n_rows], y[:n_rows]
    y_noisy, _ = flip_labels(y, noise, random_state=seed)
    pixels = pa.FixedSizeListArray.from_arrays(pa.array(X.astype(np.float32).ravel()), 64)
    table = pa.table({
        "id": pa.array(np.arange(y.shape[0]), pa.int64()),
        "pixels": pixels,
        "label": pa.array(y_noisy, pa.int64()),
        "true_label": pa.array(y, pa.int64()),
    }).replace_schema_metadata({
        "tod_cleanse.demo": json.dumps({"data": "sklearn digits", "noise": noise, "seed": seed}),
    })
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path
