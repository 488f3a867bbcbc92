"""Benchmark: ``clean --engine local`` against ``--engine ray`` with 1 and 2 workers.

Same data as ``parquet_1m.py`` (seeded Gaussian blobs, 10 classes, 16 scalar + one
16-d vector column, 10% label noise, files of 250,000 rows in row groups of 65,536).
Each configuration runs in a fresh process through the command line
(``tod-cleanse clean ... --engine ray --workers N``, a local Ray instance of N CPUs);
a sampler thread records the peak RSS of the driver and of every process below it
(Ray's workers, raylet, GCS...). Training is the same on the driver in every
configuration (MLP on a seeded sample); the passes Ray runs are ``score`` (rows
outside the sample) and ``write`` (kept / dropped / issues, with the worker-side
re-read of the written keys), then the driver's ``verify``.

    python examples/benchmarks/ray_scale.py                   # 1M rows
    python examples/benchmarks/ray_scale.py --rows 1000000 5000000

Prints a markdown table (ratios against the local engine of the same run) and a
model, from the measured per-row costs, of 100M rows on N workers; writes both to
``examples/benchmarks/results/ray/ray_scale.md`` and the raw numbers to
``ray_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parquet_1m import N_SCALAR, generate  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "ray"
PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree_rss(root: int) -> dict[int, tuple[str, int]]:
    """RSS (bytes) and name of ``root`` and every process below it."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, todo = {root}, [root]
    while todo:
        pid = todo.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                todo.append(child)
    out = {}
    for pid in tree:
        try:
            with open(f"/proc/{pid}/statm") as fh:
                rss = int(fh.read().split()[1]) * PAGE
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                name = fh.read().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        out[pid] = (name, rss)
    return out


def _code_fingerprint() -> str:
    """Hash of the package's sources: other work may change them between configurations."""
    import hashlib

    repo = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for folder in ("tod_cleanse", "adapters"):
        for path in sorted((repo / folder).rglob("*.py")):
            h.update(str(path.relative_to(repo)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


def _kind(name: str) -> str:
    if "MapWorker" in name or "ray::" in name and "Actor" in name:
        return "ray_worker"
    if "ray::IDLE" in name or name.startswith("ray::"):
        return "ray_worker"
    return "ray_system"


def child(data: Path, out: Path, engine: str, workers: int, max_train_rows: int,
          epochs: int) -> dict:
    """One configuration, in this process, through the command line."""
    import torch

    torch.set_num_threads(1)
    from tod_cleanse.cli import main

    code = _code_fingerprint()
    load = os.getloadavg()[0]
    me = os.getpid()
    peaks: dict[int, tuple[str, int]] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pid, (name, rss) in _tree_rss(me).items():
                if rss > peaks.get(pid, ("", 0))[1]:
                    peaks[pid] = (name, rss)
            stop.wait(0.25)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    argv = ["--quiet", "clean", str(data), "--label", "label", "--key", "id",
            "--features", *[f"f{j:02d}" for j in range(N_SCALAR)], "emb",
            "--out", str(out), "--hidden", "256,256", "--max-epochs", str(epochs),
            "--batch-size", "256", "--max-train-rows", str(max_train_rows),
            "--method", "oos_likelihood", "--drop-fraction", "0.1", "--seed", "0"]
    if engine == "ray":
        argv += ["--engine", "ray", "--workers", str(workers)]
    t0 = time.perf_counter()
    status = main(argv)
    wall = time.perf_counter() - t0
    stop.set()
    thread.join()
    if status != 0:
        raise SystemExit(f"tod-cleanse clean exited with {status}")
    summary = json.loads((out / "summary.json").read_text())
    driver = peaks.pop(me, ("", 0))[1]
    by_kind: dict[str, list[int]] = {"ray_worker": [], "ray_system": []}
    for name, rss in peaks.values():
        by_kind[_kind(name)].append(rss)
    return {
        "engine": engine, "workers": workers if engine == "ray" else 0,
        "rows": summary["counts"]["input"], "trained": summary["counts"]["trained"],
        "wall_s": wall, "timings_s": summary["timings_s"],
        "kept_checksum": summary["partition_check"]["kept"],
        "partition_ok": summary["partition_check"]["ok"],
        "driver_peak_rss_mb": driver / 2**20,
        "worker_peak_rss_mb": max(by_kind["ray_worker"], default=0) / 2**20,
        "ray_workers_seen": len(by_kind["ray_worker"]),
        "ray_system_peak_rss_mb": sum(by_kind["ray_system"]) / 2**20,
        "code": code if code == _code_fingerprint() else "changed during the run",
        "load_avg_1min": [round(load, 1), round(os.getloadavg()[0], 1)],
    }


def _passes(r: dict) -> float:
    t = r["timings_s"]
    return t.get("score", 0) + t.get("write", 0) + t.get("verify", 0)


def _table(results: list[dict]) -> list[str]:
    head = ("rows", "engine", "wall s", "read s", "train s", "score s", "write s", "verify s",
            "score+write+verify rows/s", "vs local", "driver peak RSS MB",
            "worker peak RSS MB", "Ray system RSS MB", "load avg", "kept = local",
            "partition")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|"]
    for r in results:
        base = next(b for b in results if b["rows"] == r["rows"] and b["engine"] == "local")
        t = r["timings_s"]
        rate = r["rows"] / _passes(r)
        name = "local" if r["engine"] == "local" else f"ray x{r['workers']}"
        same = ("yes" if r["kept_checksum"] == base["kept_checksum"] else
                "NO" if r["code"] == base["code"] else "n/a: code changed")
        lines.append(
            f"| {r['rows']:,} | {name} | {r['wall_s']:.1f} | {t['read']:.1f} | {t['train']:.1f} "
            f"| {t['score']:.1f} | {t['write']:.1f} | {t['verify']:.1f} | {rate:,.0f} | "
            f"{_passes(base) / _passes(r):.2f} | {r['driver_peak_rss_mb']:.0f} | "
            f"{r['worker_peak_rss_mb']:.0f} | {r['ray_system_peak_rss_mb']:.0f} | "
            f"{r['load_avg_1min'][0]:.0f}-{r['load_avg_1min'][1]:.0f} | {same} | "
            f"{'ok' if r['partition_ok'] else 'FAILED'} |")
    return lines


def _fit(results: list[dict], engine: str, workers: int, stages: tuple[str, ...]
         ) -> tuple[float, float]:
    """Fixed seconds and seconds per row of ``stages``, from the two largest sizes
    (with one size: no fixed part, all of it per row)."""
    runs = sorted((r for r in results if r["engine"] == engine and r["workers"] == workers),
                  key=lambda r: r["rows"])
    cost = [(r["rows"], sum(r["timings_s"].get(k, 0.0) for k in stages)) for r in runs]
    if len(cost) < 2:
        return 0.0, cost[-1][1] / cost[-1][0]
    (n1, t1), (n2, t2) = cost[-2], cost[-1]
    per_row = max((t2 - t1) / (n2 - n1), 0.0)
    return max(t1 - per_row * n1, 0.0), per_row


def _model(results: list[dict]) -> list[str]:
    """100M rows on N workers, from the measured fixed and per-row costs."""
    sizes = sorted({r["rows"] for r in results})
    workers = min(r["workers"] for r in results if r["engine"] == "ray")
    fixed_w, per_row_w = _fit(results, "ray", workers, ("score", "write"))
    per_row_w *= workers  # one worker's cost per row
    _, per_row_read = _fit(results, "local", 0, ("read",))
    _, per_row_verify = _fit(results, "ray", workers, ("verify",))
    _, per_row_local = _fit(results, "local", 0, ("score", "write", "verify"))
    train = max(r["timings_s"]["train"] for r in results if r["engine"] == "local")
    big = 100_000_000
    how = ("from the difference between the two largest sizes" if len(sizes) > 1
           else "from one size, start-up included")
    lines = [f"Model of 100M rows ({how}; per row: driver read {per_row_read * 1e6:.2f} us, "
             f"one Ray worker score+write {per_row_w * 1e6:.2f} us (+{fixed_w:.0f} s start-up "
             f"per run), driver verify {per_row_verify * 1e6:.3f} us, local engine "
             f"score+write+verify {per_row_local * 1e6:.2f} us; training {train:.0f} s on the "
             "same sample):", "",
             "| workers | driver read s | train s | workers' score+write s | verify s | total s "
             "| driver share |", "|---:|---:|---:|---:|---:|---:|---:|",
             f"| local engine | {per_row_read * big:,.0f} | {train:,.0f} | "
             f"{per_row_local * big:,.0f} (one process) | - | "
             f"{(per_row_read + per_row_local) * big + train:,.0f} | 100% |"]
    for n_workers in (1, 2, 8, 32, 128):
        read, work = per_row_read * big, per_row_w * big / n_workers + fixed_w
        verify = per_row_verify * big
        total = read + train + work + verify
        lines.append(f"| {n_workers} | {read:,.0f} | {train:,.0f} | {work:,.0f} | {verify:,.0f} "
                     f"| {total:,.0f} | {(read + verify) / total:.0%} |")
    cross = per_row_w / max(per_row_read, 1e-12)
    lines += ["", f"The driver's single read pass (labels and keys) costs as much per row as "
              f"{cross:.0f} workers' score and write passes: past about {cross:.0f} workers "
              "the driver is the bottleneck (then the read pass should move to the workers "
              "too). The driver also holds about 38 bytes per row (keys 8, label code 4, score "
              "8, rank 8, prediction 4, probability 4, flags 2): 3.8 GB at 100M rows, and the "
              "same again in Ray's object store (broadcast to the workers); sorting 100M scores "
              "for the decision takes the driver about 10 s. The checksum step is not a "
              "bottleneck: workers re-read their own files' keys in parallel and the driver "
              "combines one (count, sum, xor) per file."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--max-train-rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workdir", help="where to write the data (default: a temp folder)")
    parser.add_argument("--child", nargs=4, metavar=("DATA", "OUT", "ENGINE", "WORKERS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        data, out, engine, workers = args.child
        print(json.dumps(child(Path(data), Path(out), engine, int(workers),
                               args.max_train_rows, args.epochs)))
        return
    results = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for n in args.rows:
            data = Path(tmp) / f"data_{n}"
            generate(data, n, 0.1, 0)
            for engine, workers in [("local", 0)] + [("ray", w) for w in args.workers]:
                out = Path(tmp) / f"out_{n}_{engine}_{workers}"
                cmd = [sys.executable, __file__, "--child", str(data), str(out), engine,
                       str(workers), "--max-train-rows", str(args.max_train_rows),
                       "--epochs", str(args.epochs)]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode:
                    raise SystemExit(proc.stderr[-3000:])
                results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                r = results[-1]
                print(f"{n:,} rows, {engine} {workers or ''}: {r['wall_s']:.1f} s, stages "
                      + ", ".join(f"{k} {v:.1f}" for k, v in r["timings_s"].items()),
                      flush=True)
                shutil.rmtree(out)
                RESULTS.mkdir(parents=True, exist_ok=True)
                (RESULTS / "ray_scale.json").write_text(json.dumps(results, indent=2) + "\n")
            shutil.rmtree(data)
    text = [f"MLP (256, 256), oos_likelihood, {args.epochs} epochs on a "
            f"{args.max_train_rows:,}-row seeded sample (driver), torch threads 1 per "
            f"process, {os.cpu_count()} CPUs shared with other work; command: "
            f"`python examples/benchmarks/ray_scale.py --rows {' '.join(map(str, args.rows))}`",
            "", *_table(results), "", *_model(results)]
    print("\n".join(text))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ray_scale.md").write_text("\n".join(text) + "\n")
    (RESULTS / "ray_scale.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
