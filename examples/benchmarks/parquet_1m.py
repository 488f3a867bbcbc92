"""Benchmark: clean a synthetic 1,000,000-row tabular Parquet dataset with the MLP.

Generates seeded Gaussian-blob data (10 classes, 16 scalar feature columns plus one
16-d vector column) with 10% injected label noise, written as Parquet files of
250,000 rows (row groups of 65,536), then runs ``clean_parquet`` on 250k, 500k and
1M rows, each in a fresh process, and reports wall time, rows/s, peak resident
memory (``ru_maxrss`` and RSS sampled every 50 ms) and how well the dropped rows
match the injected noise. Training is on a seeded sample (``--max-train-rows``);
every other row is scored by the full network in streamed batches.

    python examples/benchmarks/parquet_1m.py                # 250k, 500k, 1M rows
    python examples/benchmarks/parquet_1m.py --rows 100000  # quick

Target: peak memory under 3 GB and flat in the number of rows scored. Ratios are
against the first (smallest) size of the same run; each size's stage times (read,
train, score, write, verify, from ``summary.json``) are printed as it finishes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tod_cleanse.noise import flip_labels

N_CLASSES = 10
N_SCALAR = 16
VEC_DIM = 16
FILE_ROWS = 250_000


def generate(folder: Path, n_rows: int, noise: float, seed: int) -> int:
    """Write ``n_rows`` rows in files of FILE_ROWS rows; returns the number of flipped labels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=0.6, size=(N_CLASSES, N_SCALAR + VEC_DIM))
    flipped = 0
    for i, start in enumerate(range(0, n_rows, FILE_ROWS)):
        n = min(FILE_ROWS, n_rows - start)
        y = rng.integers(0, N_CLASSES, n)
        X = (centers[y] + rng.normal(size=(n, N_SCALAR + VEC_DIM))).astype(np.float32)
        y_noisy, noisy = flip_labels(y, noise, random_state=rng, classes=np.arange(N_CLASSES),
                                     sampling="bernoulli")
        flipped += int(noisy.sum())
        cols = {"id": pa.array(np.arange(start, start + n), pa.int64())}
        for j in range(N_SCALAR):
            cols[f"f{j:02d}"] = pa.array(X[:, j])
        cols["emb"] = pa.FixedSizeListArray.from_arrays(pa.array(X[:, N_SCALAR:].ravel()), VEC_DIM)
        cols["label"] = pa.array(y_noisy, pa.int64())
        cols["is_noisy"] = pa.array(noisy)  # ground truth: never a feature
        table = pa.table(cols).replace_schema_metadata({"benchmark": "parquet_1m"})
        pq.write_table(table, folder / f"part-{i:03d}.parquet", row_group_size=65_536)
    return flipped


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(data: Path, out: Path, max_train_rows: int, epochs: int) -> dict:
    """Clean ``data`` into ``out`` in this process and measure it."""
    import torch

    torch.set_num_threads(1)
    from tod_cleanse import ToDMLPClassifier
    from tod_cleanse.adapters.parquet import clean_parquet

    peak = {"rss": _rss_bytes()}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], _rss_bytes())
            stop.wait(0.05)

    rss_start = _rss_bytes()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    est = ToDMLPClassifier(hidden_layer_sizes=(256, 256), max_epochs=epochs, batch_size=256,
                           random_state=0, verbose=0)
    summary = clean_parquet(data, out, label="label",
                            features=[f"f{j:02d}" for j in range(N_SCALAR)] + ["emb"],
                            key="id", estimator=est, max_train_rows=max_train_rows,
                            method="oos_likelihood", drop_fraction=0.1, progress=False)
    wall = time.perf_counter() - t0
    stop.set()
    thread.join()
    ru_maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dropped = pq.read_table(out / "dropped", columns=["is_noisy"])["is_noisy"].to_numpy()
    truth = pq.read_table(data, columns=["id", "is_noisy"]).sort_by("id")
    n_noisy = int(truth["is_noisy"].to_numpy().sum())
    issues = pq.read_table(out / "issues.parquet", columns=["id", "score", "is_issue", "trained"])
    issues = issues.sort_by("id")
    noisy = truth["is_noisy"].to_numpy()
    groups = {}
    for name, want in (("trained", True), ("untrained", False)):
        g = issues["trained"].to_numpy() == want
        flag, score = issues["is_issue"].to_numpy()[g], issues["score"].to_numpy()[g]
        bad = noisy[g]
        groups[name] = {
            "rows": int(g.sum()), "dropped_share": float(flag.mean()),
            "noise_share": float(bad.mean()),
            "precision": float(bad[flag].mean()) if flag.any() else float("nan"),
            "recall": float(flag[bad].mean()) if bad.any() else float("nan"),
            "median_score_clean": float(np.median(score[~bad])),
            "median_score_flipped": float(np.median(score[bad])),
        }
    return {
        "rows": summary["counts"]["input"],
        "trained": summary["counts"]["trained"],
        "dropped": summary["counts"]["dropped"],
        "wall_s": wall,
        "rows_per_s": summary["counts"]["input"] / wall,
        "ru_maxrss_mb": ru_maxrss_mb,
        "sampled_peak_rss_mb": peak["rss"] / 2**20,
        "rss_before_mb": rss_start / 2**20,
        "precision": float(dropped.mean()) if dropped.size else float("nan"),
        "recall": float(dropped.sum() / max(n_noisy, 1)),
        "partition_ok": summary["partition_check"]["ok"],
        "timings_s": summary["timings_s"],
        "groups": groups,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[250_000, 500_000, 1_000_000])
    parser.add_argument("--max-train-rows", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="where to write the data (default: a temp folder)")
    parser.add_argument("--worker", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(Path(args.worker[0]), Path(args.worker[1]), args.max_train_rows,
                        args.epochs)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        results = []
        for n in args.rows:
            data = Path(tmp) / f"data_{n}"
            t = time.perf_counter()
            flipped = generate(data, n, args.noise, args.seed)
            gen_s = time.perf_counter() - t
            size_mb = sum(f.stat().st_size for f in data.iterdir()) / 2**20
            print(f"generated {n:,} rows ({flipped:,} flipped labels, {size_mb:.0f} MB) "
                  f"in {gen_s:.1f} s", flush=True)
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", str(data), str(Path(tmp) / f"out_{n}"),
                 "--max-train-rows", str(args.max_train_rows), "--epochs", str(args.epochs)],
                capture_output=True, text=True, check=True)
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(res)
            print(f"  cleaned in {res['wall_s']:.1f} s; stages (s): "
                  + ", ".join(f"{k} {v:.1f}" for k, v in res["timings_s"].items()), flush=True)
            shutil.rmtree(Path(tmp) / f"out_{n}")
            shutil.rmtree(data)

    base = results[0]
    print()
    print(f"MLP (256, 256), oos_likelihood, {args.epochs} epochs on a "
          f"{args.max_train_rows:,}-row seeded sample, torch threads 1; drop 10%; "
          f"{N_SCALAR} scalar + 1 {VEC_DIM}-d vector feature columns")
    header = ("rows", "trained", "wall s", "wall / first", "rows/s", "peak RSS MB (ru_maxrss)",
              "peak RSS MB (sampled)", "RSS / first", "precision", "recall", "partition")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" for _ in header) + "|")
    for r in results:
        print(f"| {r['rows']:,} | {r['trained']:,} | {r['wall_s']:.1f} | "
              f"{r['wall_s'] / base['wall_s']:.2f} | {r['rows_per_s']:,.0f} | "
              f"{r['ru_maxrss_mb']:.0f} | {r['sampled_peak_rss_mb']:.0f} | "
              f"{r['ru_maxrss_mb'] / base['ru_maxrss_mb']:.2f} | {r['precision']:.3f} | "
              f"{r['recall']:.3f} | {'ok' if r['partition_ok'] else 'FAILED'} |")
    last = results[-1]
    if len(results) > 1:
        extra = (last["ru_maxrss_mb"] - base["ru_maxrss_mb"]) / (last["rows"] - base["rows"])
        print(f"\nrows x{last['rows'] / base['rows']:.1f} -> peak RSS "
              f"x{last['ru_maxrss_mb'] / base['ru_maxrss_mb']:.2f} "
              f"({extra * 2**20:.0f} bytes per extra row)")
    print(f"\ntrained vs untrained rows at {last['rows']:,} rows (score = log p(given label): "
          "flipped sub-network for trained rows, full network for untrained rows)")
    cols = ("rows", "noise share", "dropped share", "precision", "recall",
            "median score, clean", "median score, flipped")
    print("| group | " + " | ".join(cols) + " |")
    print("|---|" + "|".join("---:" for _ in cols) + "|")
    for name, g in last["groups"].items():
        print(f"| {name} | {g['rows']:,} | {g['noise_share']:.3f} | {g['dropped_share']:.3f} | "
              f"{g['precision']:.3f} | {g['recall']:.3f} | {g['median_score_clean']:.3f} | "
              f"{g['median_score_flipped']:.3f} |")
    worst = max(r["ru_maxrss_mb"] for r in results)
    print(f"target peak < 3 GB: {'met' if worst < 3072 else 'MISSED'} ({worst:.0f} MB)")


if __name__ == "__main__":
    main()
