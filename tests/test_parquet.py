"""Tests of ``tod-cleanse clean`` (tod_cleanse.adapters.parquet)."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tod_cleanse import ToDMLPClassifier
from tod_cleanse.adapters import parquet as pqa
from tod_cleanse.adapters.parquet import (
    ROW_COLUMN,
    CleanParquetError,
    PartitionCheckError,
    clean_parquet,
    export_demo,
    key_checksum,
)
from tod_cleanse.adapters.parquet import features as pq_features
from tod_cleanse.adapters.parquet import source as pq_source
from tod_cleanse.adapters.parquet import write as pq_write
from tod_cleanse.cli import main

N = 200
META = {"owner": "tests", "tod": "keep-me"}


def tiny(**kw):
    params = dict(hidden_layer_sizes=(16,), max_epochs=1, verbose=0, random_state=0)
    params.update(kw)
    return ToDMLPClassifier(**params)


def make_table(n: int = N, seed: int = 0, noise: float = 0.1) -> pa.Table:
    """Three well-separated blobs; string labels; 10% flipped; a vector column."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[4.0, 0, 0], [0, 4.0, 0], [0, 0, 4.0]])
    X = centers[y] + rng.normal(size=(n, 3))
    noisy = rng.random(n) < noise
    y_noisy = np.where(noisy, (y + 1) % 3, y)
    names = np.array(["ant", "bee", "cat"])
    vec = pa.FixedSizeListArray.from_arrays(pa.array(X.astype(np.float32).ravel()), 3)
    return pa.table({
        "id": pa.array(np.arange(1000, 1000 + n), pa.int64()),
        "x0": pa.array(X[:, 0]),
        "x1": pa.array(X[:, 1].astype(np.float32)),
        "vec": vec,
        "label": pa.array(names[y_noisy]),
        "group": pa.array(np.array(["north", "south"])[np.arange(n) % 2]),
        "noisy": pa.array(noisy),
    }).replace_schema_metadata(META)


def read_rows(path) -> pa.Table:
    """Every row under a file or folder (hive partitions included), sorted by id."""
    t = ds.dataset(str(path), format="parquet", partitioning="hive").to_table()
    return t.sort_by("id") if "id" in t.column_names else t


def clean(src, out, **kw):
    params = dict(label="label", features=["x0", "x1", "vec"], key="id", estimator=tiny(),
                  drop_fraction=0.1, progress=False)
    params.update(kw)
    return clean_parquet(src, out, **params)


def leftovers(parent) -> list[str]:
    return sorted(p for p in os.listdir(parent) if ".tod-cleanse-" in p)


# ----------------------------------------------------------------- round trips
@pytest.mark.parametrize("layout", ["file", "folder", "hive"])
def test_round_trip(tmp_path, layout):
    table = make_table()
    if layout == "file":
        src = tmp_path / "data.parquet"
        pq.write_table(table, src)
    elif layout == "folder":
        src = tmp_path / "data"
        src.mkdir()
        for i, start in enumerate(range(0, N, 70)):
            pq.write_table(table.slice(start, 70), src / f"part-{i}.parquet")
    else:
        src = tmp_path / "data"
        pq.write_to_dataset(table, src, partition_cols=["group"])
    out = tmp_path / "out"
    summary = clean(src, out, batch_rows=64)

    kept, dropped = read_rows(out / "kept"), read_rows(out / "dropped")
    assert kept.num_rows + dropped.num_rows == N
    assert dropped.num_rows == math.floor(0.1 * N)
    both = pa.concat_tables([kept, dropped.select(kept.column_names)]).sort_by("id")
    original = read_rows(src).select(kept.column_names)
    assert both.equals(original)                         # every row, exactly once, unchanged
    # same files, same schema and metadata, file by file
    in_files = sorted(os.path.relpath(f, src) for f in
                      ds.dataset(str(src), format="parquet").files) if layout != "file" \
        else ["data.parquet"]
    for part in ("kept", "dropped"):
        got = sorted(os.path.relpath(f, out / part) for f in
                     ds.dataset(str(out / part), format="parquet").files)
        assert got == in_files
        for rel in got:
            src_file = src / rel if layout != "file" else src
            assert pq.read_schema(out / part / rel).equals(pq.read_schema(src_file),
                                                           check_metadata=True)
    assert pq.read_schema(next((out / "kept").rglob("*.parquet"))).metadata[b"tod"] == b"keep-me"
    # issue table: one row per input row; dropped rows are the issues
    issues = pq.read_table(out / "issues.parquet")
    assert issues.column_names == ["id", "score", "rank", "is_issue", "label", "oos_label",
                                   "oos_proba_label", "trained"]
    assert issues.num_rows == N and sorted(issues["id"].to_pylist()) == list(range(1000, 1200))
    flagged = set(issues.filter(issues["is_issue"])["id"].to_pylist())
    assert flagged == set(dropped["id"].to_pylist())
    scores = issues["score"].to_numpy()
    ranks = issues["rank"].to_numpy()
    assert sorted(ranks.tolist()) == list(range(1, N + 1))
    assert scores[ranks == 1][0] == scores.min()         # rank 1 = most negative score
    assert np.all(scores[issues["is_issue"].to_numpy()].max() <=
                  scores[~issues["is_issue"].to_numpy()].min())
    assert set(issues["oos_label"].to_pylist()) <= {"ant", "bee", "cat"}
    assert all(issues["trained"].to_pylist())
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert summary["counts"] == {**summary["counts"], "input": N, "kept": N - 20, "dropped": 20,
                                 "trained": N}
    assert set(summary["timings_s"]) >= {"read", "train", "score", "write", "verify",
                                         "total"}
    assert summary["versions"]["pyarrow"] == pa.__version__
    # without --method: the estimator family's own default, and summary.json says so
    assert summary["parameters"]["method"] == type(tiny()).default_method
    assert summary["parameters"]["method_choice"] == f"default of {type(tiny()).__name__}"
    assert leftovers(tmp_path) == []


def test_family_default_method_and_auto(tmp_path):
    from tod_cleanse import ToDMLPClassifier

    class TwoViewFamily(ToDMLPClassifier):
        default_method = "two_view_margin"

    src = tmp_path / "data.parquet"
    pq.write_table(make_table(), src)
    est = TwoViewFamily(**tiny().get_params())
    summary = clean(src, tmp_path / "out", estimator=est, method="auto")
    assert summary["parameters"]["method"] == "two_view_margin"
    assert summary["parameters"]["method_choice"] == "default of TwoViewFamily"
    # a sampled run: two_view_margin has no score for untrained rows, so it falls back
    sampled = clean(src, tmp_path / "sampled", estimator=est, max_train_rows=120)
    assert sampled["parameters"]["method"] == "oos_likelihood"
    assert "TwoViewFamily's default 'two_view_margin'" in sampled["parameters"]["method_choice"]


def test_row_positions_without_key(tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    table = make_table()
    pq.write_table(table.slice(100), src / "b.parquet")   # scan order is sorted by path
    pq.write_table(table.slice(0, 100), src / "a.parquet")
    out = tmp_path / "out"
    clean(src, out, key=None)
    issues = pq.read_table(out / "issues.parquet")
    assert issues.column_names[0] == ROW_COLUMN
    assert issues[ROW_COLUMN].to_pylist() == list(range(N))
    kept, dropped = read_rows(out / "kept"), read_rows(out / "dropped")
    assert kept.schema.field(ROW_COLUMN).type == pa.int64()
    # the row column joins back: row r is input row r in scan order (a.parquet, then b)
    both = pa.concat_tables([kept, dropped]).sort_by(ROW_COLUMN)
    assert both["id"].to_pylist() == table["id"].to_pylist()
    assert set(dropped[ROW_COLUMN].to_pylist()) == set(
        issues.filter(issues["is_issue"])[ROW_COLUMN].to_pylist())
    # apart from the appended row column, schema and metadata are the input's
    written = pq.read_schema(out / "kept" / "a.parquet")
    assert written.remove(written.get_field_index(ROW_COLUMN)).equals(
        pq.read_schema(src / "a.parquet"), check_metadata=True)


def test_sampled_training_scores_untrained_rows_with_full_network(tmp_path):
    src = tmp_path / "data.parquet"
    pq.write_table(make_table(n=300), src)
    out = tmp_path / "out"
    summary = clean(src, out, max_train_rows=120, estimator=tiny(max_epochs=15, lr=1e-2),
                    drop_fraction="auto")
    issues = pq.read_table(out / "issues.parquet").to_pandas()
    trained = issues["trained"].to_numpy()
    assert trained.sum() == summary["counts"]["trained"] == 120
    assert summary["counts"]["untrained"] == 180
    # oos_likelihood is log p(given label) for both kinds of row (flipped / full network)
    np.testing.assert_allclose(issues["score"], np.log(issues["oos_proba_label"] + 1e-12),
                               rtol=1e-5, atol=1e-5)
    # same orientation: mislabeled rows score lower in both groups
    noisy = pq.read_table(src, columns=["noisy"])["noisy"].to_numpy()
    for group in (trained, ~trained):
        assert issues["score"][group & noisy].mean() < issues["score"][group & ~noisy].mean() - 1
    assert "sample" in summary["parameters"]["decision"]
    # without --method a sampled run uses a method that scores untrained rows alike
    assert summary["parameters"]["method"] in pqa.SAMPLED_METHODS
    assert read_rows(out / "kept").num_rows + read_rows(out / "dropped").num_rows == 300
    # the sample is seeded: a second run picks the same training rows
    clean(src, tmp_path / "again", max_train_rows=120, estimator=tiny())
    again = pq.read_table(tmp_path / "again" / "issues.parquet")["trained"].to_numpy()
    assert np.array_equal(again, trained)


def test_sampling_refuses_methods_without_untrained_scores(tmp_path):
    src = tmp_path / "data.parquet"
    pq.write_table(make_table(), src)
    with pytest.raises(CleanParquetError, match="--method self_influence .* --max-train-rows"):
        clean(src, tmp_path / "out", method="self_influence", max_train_rows=50)
    assert not (tmp_path / "out").exists()


def test_eval_influence_with_validation_parquet(tmp_path):
    src, val = tmp_path / "data.parquet", tmp_path / "val.parquet"
    pq.write_table(make_table(), src)
    pq.write_table(make_table(n=40, seed=1, noise=0.0), val)
    summary = clean(src, tmp_path / "out", method="eval_influence", eval_path=val,
                    drop_fraction=0.05)
    assert summary["counts"]["dropped"] == 10
    assert summary["parameters"]["method"] == "eval_influence"


# ------------------------------------------------------------- partition check
def test_partition_check_matches_written_files(tmp_path):
    src = tmp_path / "data.parquet"
    pq.write_table(make_table(), src)
    summary = clean(src, tmp_path / "out")
    check = summary["partition_check"]
    kept, dropped = read_rows(tmp_path / "out" / "kept"), read_rows(tmp_path / "out" / "dropped")
    assert check["ok"] and check["kept_is_the_chosen_rows"]
    assert check["input"] == key_checksum(np.arange(1000, 1200))
    assert check["kept"] == key_checksum(kept["id"].to_numpy())
    assert check["dropped"] == key_checksum(dropped["id"].to_numpy())
    s = (int(check["kept"]["key_hash_sum"], 16) + int(check["dropped"]["key_hash_sum"], 16))
    assert s % 2**64 == int(check["input"]["key_hash_sum"], 16)


def test_partition_check_catches_a_lost_row(tmp_path, monkeypatch):
    """A writer that silently loses a row must fail the run and leave nothing behind."""
    src = tmp_path / "data.parquet"
    pq.write_table(make_table(), src)
    real = pq_write.write_batch

    def lossy(writer, batch):
        real(writer, batch.slice(1) if batch.num_rows > 50 else batch)

    monkeypatch.setattr(pq_write, "write_batch", lossy)
    with pytest.raises(PartitionCheckError, match="partition check failed .*rows_match"):
        clean(src, tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


# ---------------------------------------------------------- overwrite / crash
def test_refuses_to_overwrite(tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    pq.write_table(make_table(), src / "part.parquet")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(CleanParquetError, match="not empty.*--overwrite"):
        clean(src, mine)
    with pytest.raises(CleanParquetError, match="not a tod-cleanse output"):
        clean(src, mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "precious"
    with pytest.raises(CleanParquetError, match="lies inside the input"):
        clean(src, src / "clean")
    with pytest.raises(CleanParquetError, match="holds the input"):
        clean(src / "part.parquet", src / "part.parquet")
    with pytest.raises(CleanParquetError, match="holds the input"):
        clean(src, tmp_path)
    assert sorted(os.listdir(src)) == ["part.parquet"]

    out = tmp_path / "out"
    first = clean(src, out, drop_fraction=0.1)
    with pytest.raises(CleanParquetError, match="not empty"):
        clean(src, out, drop_fraction=0.2)
    second = clean(src, out, drop_fraction=0.2, overwrite=True)   # a previous output: replaced
    assert (first["counts"]["dropped"], second["counts"]["dropped"]) == (20, 40)
    assert read_rows(out / "dropped").num_rows == 40
    (tmp_path / "empty").mkdir()
    assert clean(src, tmp_path / "empty")["partition_check"]["ok"]     # an empty folder is fine
    assert leftovers(tmp_path) == []


def test_crash_mid_write_leaves_nothing_and_rerun_works(tmp_path, monkeypatch):
    src = tmp_path / "data"
    src.mkdir()
    table = make_table()
    for i in range(3):
        pq.write_table(table.slice(70 * i, 70), src / f"p{i}.parquet")
    calls = {"n": 0}
    real = pq_write.write_batch

    def crashing(writer, batch):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk on fire")
        real(writer, batch)

    monkeypatch.setattr(pq_write, "write_batch", crashing)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk on fire"):
        clean(src, out, batch_rows=32)
    assert calls["n"] == 5
    assert not out.exists() and leftovers(tmp_path) == []
    monkeypatch.setattr(pq_write, "write_batch", real)
    summary = clean(src, out, batch_rows=32)
    assert summary["partition_check"]["ok"]
    assert read_rows(out / "kept").num_rows + read_rows(out / "dropped").num_rows == N
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------- bad input
def _write(path, table):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def _bad_inputs(tmp_path):
    t = make_table()
    d = tmp_path / "bad"
    labels = t["label"].to_pylist()
    cases = {}
    cases["missing column"] = (_write(d / "a.parquet", t), ["--label", "nope"], "'nope' not found")
    cases["missing feature"] = (d / "a.parquet", ["--features", "x9"], "column 'x9' not found")
    cases["null labels"] = (
        _write(d / "null.parquet", t.set_column(4, "label", pa.array(labels[:-1] + [None]))),
        [], "null.parquet: label column 'label' has 1 missing value")
    cases["nan labels"] = (
        _write(d / "nan.parquet", t.set_column(4, "label", pa.array([1.0] * (N - 1) + [math.nan]))),
        [], "nan.parquet: label column 'label' contains NaN")
    cases["one class"] = (
        _write(d / "one.parquet", t.set_column(4, "label", pa.array(["ant"] * N))),
        [], "single class 'ant'")
    mixed = tmp_path / "mixed"
    _write(mixed / "a.parquet", t.slice(0, 100))
    _write(mixed / "b.parquet", t.slice(100).set_column(1, "x0", pa.array(["?"] * 100)))
    cases["mixed types"] = (mixed, [], "mixed types: column 'x0' is string in")
    cases["text as feature"] = (d / "a.parquet", ["--features", "group"], "column 'group' has type")
    cases["duplicate keys"] = (
        _write(d / "dup.parquet", t.set_column(0, "id", pa.array([7] + list(range(1, N))))),
        [], "column 'id' has duplicate values")
    cases["nan feature"] = (
        _write(d / "nanx.parquet", t.set_column(1, "x0", pa.array([math.nan] + [0.0] * (N - 1)))),
        [], "nanx.parquet: feature column 'x0' contains NaN")
    (d / "corrupt.parquet").write_bytes(b"PAR1 this is not really parquet")
    cases["corrupt file"] = (d / "corrupt.parquet", [], "corrupt.parquet")
    notes = tmp_path / "notes"
    _write(notes / "a.parquet", t)
    (notes / "readme.txt").write_text("hello")
    cases["non-parquet file"] = (notes, [], "readme.txt: not a readable Parquet file")
    whole = (d / "a.parquet").read_bytes()
    (d / "truncated.parquet").write_bytes(whole[: len(whole) // 2])
    cases["truncated file"] = (d / "truncated.parquet", [], "truncated.parquet")
    cases["empty dataset"] = (_write(d / "empty.parquet", t.slice(0, 0)), [], "empty (0 rows)")
    empty_dir = tmp_path / "nofiles"
    empty_dir.mkdir()
    cases["empty folder"] = (empty_dir, [], "no Parquet files found")
    cases["unreadable path"] = (tmp_path / "missing.parquet", [], "missing.parquet' does not exist")
    return cases


BAD = ["missing column", "missing feature", "null labels", "nan labels", "one class",
       "mixed types", "text as feature", "duplicate keys", "nan feature", "corrupt file",
       "non-parquet file", "truncated file", "empty dataset", "empty folder", "unreadable path"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_exits_with_one_line(tmp_path, capsys, case):
    path, extra, expected = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    argv = ["clean", str(path), "--label", "label", "--features", "x0", "x1", "vec", "--key",
            "id", "--out", str(out), "--max-epochs", "1", "--hidden", "8"]
    for i in range(0, len(extra), 2):          # override an option
        j = argv.index(extra[i])
        stop = j + 2
        while stop < len(argv) and not argv[stop].startswith("--"):
            stop += 1
        argv[j:stop] = extra[i:i + 2]
    rc = main(["-q"] + argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("tod-cleanse clean: error: ") and err.count("\n") == 1, err
    assert expected in err, err
    assert not out.exists() and leftovers(tmp_path) == []


def test_unwritable_output(tmp_path, capsys):
    src = _write(tmp_path / "data.parquet", make_table())
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    rc = main(["-q", "clean", str(src), "--label", "label", "--features", "x0", "--out",
               str(blocker / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot write in" in err and str(blocker) in err
    assert err.count("\n") == 1


def test_cli_needs_one_input_kind(tmp_path, capsys):
    src = _write(tmp_path / "data.parquet", make_table())
    rc = main(["-q", "clean", str(src), "--label", "label", "--out", str(tmp_path / "o")])
    assert rc == 2 and "exactly one of --features, --text and --image" in capsys.readouterr().err


# ------------------------------------------------------------------ CLI / demo
def test_cli_round_trip_on_exported_demo(tmp_path, capsys):
    demo = tmp_path / "digits.parquet"
    assert main(["clean", "--export-demo", str(demo)]) == 0
    assert pq.read_metadata(demo).num_rows == 1797
    out = tmp_path / "clean"
    rc = main(["-q", "clean", str(demo), "--label", "label", "--features", "pixels", "--key",
               "id", "--out", str(out), "--max-epochs", "1", "--hidden", "16",
               "--drop-fraction", "0.1", "--max-train-rows", "300", "--batch-rows", "500"])
    stdout = capsys.readouterr().out
    assert rc == 0 and "dropped 179 of 1797" in stdout and "partition check ok" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["trained"] == 300
    assert summary["parameters"]["estimator_params"]["hidden_layer_sizes"] == [16]
    assert summary["parameters"]["estimator_params"]["max_epochs"] == 1


def test_export_demo_noise_is_seeded(tmp_path):
    a = pq.read_table(export_demo(tmp_path / "a.parquet", n_rows=300))
    b = pq.read_table(export_demo(tmp_path / "b.parquet", n_rows=300))
    assert a.equals(b)
    flipped = np.asarray(a["label"]) != np.asarray(a["true_label"])
    assert flipped.sum() == 30


# ----------------------------------------------------------- images and text
def _png(arr: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _image_table(n: int = 48) -> tuple[pa.Table, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    imgs = rng.integers(0, 120, size=(n, 16, 16), dtype=np.uint8)
    imgs[y == 1, 4:12, 4:12] = 255
    table = pa.table({
        "id": pa.array([f"img-{i}" for i in range(n)]),
        "png": pa.array([_png(a) for a in imgs], pa.binary()),
        "pixels": pa.FixedSizeListArray.from_arrays(pa.array(imgs.ravel()), 256),
        "label": pa.array(y, pa.int64()),
    })
    return table, imgs


def test_image_column_goes_to_vgg(tmp_path):
    from tod_cleanse import ToDVGGClassifier

    table, _ = _image_table()
    src = _write(tmp_path / "images.parquet", table)
    est = ToDVGGClassifier(width_multiplier=1 / 16, max_epochs=1, batch_size=16, verbose=0,
                           random_state=0)
    summary = clean_parquet(src, tmp_path / "out", label="label", image="png", key="id",
                            estimator=est, drop_fraction=0.125, progress=False)
    assert summary["parameters"]["estimator"] == "ToDVGGClassifier"
    assert summary["counts"]["dropped"] == 6 and summary["partition_check"]["ok"]
    both = pa.concat_tables([read_rows(tmp_path / "out" / p) for p in ("kept", "dropped")])
    assert both.sort_by("id").equals(table.sort_by("id"))   # bytes come back untouched


def test_image_columns_decode_to_the_same_pixels(tmp_path):
    """Encoded PNG bytes and pixel lists (with image_shape) give the VGG the same arrays."""
    table, imgs = _image_table(n=8)
    src = pq_source.Source(_write(tmp_path / "images.parquet", table), batch_rows=64)
    batch = next(src.batches(["png", "pixels"]))[2]
    from_png = pq_features.Features(src, "image", ["png"], "--image")(batch, "f")
    from_list = pq_features.Features(src, "image", ["pixels"], "--image", (16, 16))(batch, "f")
    np.testing.assert_array_equal(from_png, imgs)
    np.testing.assert_array_equal(from_list, imgs.astype(np.float32))
    with pytest.raises(CleanParquetError, match="image-shape 8x8 does not match the 256 values"):
        pq_features.Features(src, "image", ["pixels"], "--image", (8, 8))(batch, "f")


def test_undecodable_image_is_bad_input(tmp_path):
    table, _ = _image_table()
    blobs = table["png"].to_pylist()
    blobs[5] = b"not an image"
    src = _write(tmp_path / "images.parquet", table.set_column(1, "png", pa.array(blobs)))
    with pytest.raises(CleanParquetError, match="column 'png', row 5 .* not a decodable image"):
        clean_parquet(src, tmp_path / "out", label="label", image="png", key="id",
                      model="vgg", model_params={"max_epochs": 1}, progress=False)
    assert not (tmp_path / "out").exists()


def test_text_column_goes_to_bert(tmp_path):
    transformers = pytest.importorskip("transformers")
    from tod_cleanse import ToDBertClassifier

    words = ["alpha", "beta", "gamma", "delta", "red", "green", "blue", "cat", "dog", "fish"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
    model_dir = tmp_path / "tiny-bert"
    model_dir.mkdir()
    (model_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    transformers.BertTokenizer(str(model_dir / "vocab.txt")).save_pretrained(model_dir)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=32)
    transformers.BertModel(config).save_pretrained(model_dir)
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    texts = [" ".join(rng.choice(words[:4] if c else words[4:], 5)) for c in y]
    table = pa.table({"text": texts, "label": pa.array(np.array(["no", "yes"])[y])})
    src = _write(tmp_path / "texts.parquet", table)
    est = ToDBertClassifier(model_name_or_path=str(model_dir), max_epochs=1, batch_size=8,
                            max_length=16, verbose=0, random_state=0)
    summary = clean_parquet(src, tmp_path / "out", label="label", text="text", estimator=est,
                            drop_fraction=0.1, progress=False)
    assert summary["parameters"]["estimator"] == type(est).__name__
    assert summary["counts"] == {**summary["counts"], "kept": 36, "dropped": 4}
    kept = pq.read_table(tmp_path / "out" / "kept" / "texts.parquet")
    assert set(kept["text"].to_pylist()) <= set(texts)


def test_report_beside_the_outputs(tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(make_table(), src)
    summary = clean(src, tmp_path / "out", report=True)
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert summary["report"] == "report.html"
    assert sorted(os.listdir(tmp_path / "out" / "report_figures"))
    issues = pq.read_table(tmp_path / "out" / "issues.parquet").to_pandas()
    for key in issues.loc[issues["is_issue"], "id"]:
        assert f">{key}<" in html  # every dropped row is listed by its key
    assert "http://" not in html and "https://" not in html
    assert not leftovers(tmp_path)
