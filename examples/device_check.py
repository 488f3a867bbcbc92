"""Device check: every model family fitted on an accelerator, with and without AMP.

The one prepared script to run when a GPU machine is lent (the CUDA and mixed-precision
paths cannot be exercised on the CPU-only CI). For each family -- the MLP (with its
out-of-fold members), a tiny random BERT written to a local folder (no download), VGG,
ResNet and ViT at a fraction of their width -- and for ``amp`` off and ``"auto"`` it:

1. fits on the device and records the fit time and the final training loss;
2. saves the model (``persistence.save``, or ``save_pretrained`` for text) and loads it on
   the CPU, then compares the CPU and device ``predict_proba`` and ``oos_proba_``;
3. times ``score_influence`` (the exact estimate) for a block of targets on the device
   and, with the loaded model, on the CPU.

It prints one markdown table and writes ``device_check.json`` (and the table) to
``--out`` (default: ``$OUT`` when set, else ``build/``). Families whose package is
missing (``transformers``, ``torchvision``) are reported as skipped.

Usage::

    python examples/device_check.py                  # CUDA when available
    python examples/device_check.py --device cpu --quick   # the smoke run of the tests
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tod_cleanse import ToDMLPClassifier
from tod_cleanse.diagnostics import FitReliabilityWarning
from tod_cleanse.estimators import persistence

WORDS = [f"w{i}" for i in range(90)]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device: str) -> tuple[Any, float]:
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t0


def _tabular(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    centers = rng.normal(scale=2.0, size=(4, 96))
    return (centers[y] + rng.normal(size=(n, 96))).astype(np.float32), y


def _images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.integers(0, 80, size=(n, 32, 32, 3)).astype(np.uint8)
    X[y == 1, 8:24, 8:24, :] += 120  # a bright square marks class 1
    return X, y


def _texts(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.where(np.arange(n) % 2 == 0, "neg", "pos")
    X = [" ".join(rng.choice(WORDS[:45] if c == "neg" else WORDS[45:], size=rng.integers(3, 9)))
         for c in y]
    return X, y


def _tiny_bert(folder: Path) -> str:
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {w: i for i, w in enumerate(SPECIAL + WORDS)}
    transformers.BertTokenizer(vocab=vocab).save_pretrained(folder)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=128,
                                     max_position_embeddings=64, pad_token_id=0, num_labels=2)
    torch.manual_seed(0)
    transformers.AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    return str(folder)


def families(quick: bool, workdir: Path) -> dict[str, tuple]:
    """name -> (factory(amp, device) -> estimator, X, y, needed package or None)."""
    n_tab, n_img, n_txt = (200, 64, 32) if quick else (4000, 1024, 512)
    epochs = 1 if quick else 3
    out: dict[str, tuple] = {}
    X, y = _tabular(n_tab)
    out["mlp"] = (lambda amp, dev: ToDMLPClassifier(max_epochs=epochs, amp=amp, device=dev,
                                                     random_state=0, verbose=0), X, y, None)
    Xi, yi = _images(n_img)
    vision = dict(max_epochs=epochs, batch_size=32, lr=1e-2, optimizer="adam", random_state=0,
                  verbose=0)

    def vgg(amp, dev):
        from tod_cleanse import ToDVGGClassifier
        return ToDVGGClassifier(width_multiplier=1 / 16, classifier_width=32, amp=amp,
                                device=dev, **vision)

    def resnet(amp, dev):
        from tod_cleanse.estimators.resnet import ToDResNetClassifier
        return ToDResNetClassifier(width_multiplier=1 / 16, classifier_width=32, amp=amp,
                                   device=dev, **vision)

    def vit(amp, dev):
        from tod_cleanse.estimators.vit import ToDViTClassifier
        return ToDViTClassifier(patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                                mlp_dim=64, amp=amp, device=dev, **vision)

    out["vgg"] = (vgg, Xi, yi, "torchvision")
    out["resnet"] = (resnet, Xi, yi, "torchvision")
    out["vit"] = (vit, Xi, yi, "torchvision")
    Xt, yt = _texts(n_txt)

    def text(amp, dev):
        from tod_cleanse import ToDTextClassifier
        path = workdir / "tiny-bert"
        if not path.exists():
            _tiny_bert(path)
        return ToDTextClassifier(model_name_or_path=str(path), max_length=16, max_epochs=epochs,
                                 batch_size=16, lr=1e-3, amp=amp, device=dev, random_state=0,
                                 verbose=0)

    out["text"] = (text, Xt, yt, "transformers")
    return out


def _reload_on_cpu(est: Any, folder: Path) -> Any:
    if hasattr(est, "save_pretrained"):
        est.save_pretrained(folder)
        return type(est).from_pretrained(folder, device="cpu")
    path = folder.with_suffix(".pt")
    persistence.save(est, path)
    return persistence.load(path, device="cpu")


def check_one(name: str, factory, X, y, amp: Any, device: str, n_targets: int,
              workdir: Path) -> dict:
    est = factory(amp, device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitReliabilityWarning)
        _, fit_s = _timed(lambda: est.fit(X, y), device)
    row: dict[str, Any] = {"family": name, "amp": str(amp), "device": str(est.device_),
                           "amp_dtype": str(est._amp_dtype()), "fit_s": fit_s,
                           "final_loss": est.history_[-1]["train_loss"]}
    X_t, y_t = X[:n_targets], y[:n_targets]
    infl, row["influence_device_s"] = _timed(lambda: est.score_influence(X_t, y_t), device)
    cpu = _reload_on_cpu(est, workdir / f"{name}-{amp}")
    row["loaded_device"] = str(cpu.device_)
    row["max_abs_proba_diff_cpu_vs_device"] = float(
        np.abs(cpu.predict_proba(X[:64]) - est.predict_proba(X[:64])).max())
    row["oos_proba_equal_after_load"] = bool(np.array_equal(cpu.oos_proba_, est.oos_proba_))
    infl_cpu, row["influence_cpu_s"] = _timed(lambda: cpu.score_influence(X_t, y_t), "cpu")
    row["max_abs_influence_diff"] = float(np.abs(infl_cpu - infl).max())
    row["n_train"] = int(len(y))
    row["n_targets"] = int(len(y_t))
    return row


def table(rows: list[dict]) -> str:
    cols = ["family", "amp", "amp_dtype", "device", "n_train", "fit_s", "final_loss",
            "influence_device_s", "influence_cpu_s", "max_abs_proba_diff_cpu_vs_device",
            "max_abs_influence_diff", "oos_proba_equal_after_load", "error"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="tiny data, one epoch (smoke run)")
    ap.add_argument("--families", default="mlp,text,vgg,resnet,vit")
    ap.add_argument("--out", default=os.environ.get("OUT") or "build")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    info = {"torch": torch.__version__, "device": args.device,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    print(json.dumps(info), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        fams = families(args.quick, workdir)
        for name in args.families.split(","):
            factory, X, y, package = fams[name]
            for amp in (False, "auto"):
                try:
                    if package is not None:
                        __import__(package)
                    rows.append(check_one(name, factory, X, y, amp, args.device,
                                          8 if args.quick else 64, workdir))
                except ModuleNotFoundError as exc:
                    rows.append({"family": name, "amp": str(amp), "error": f"skipped: {exc}"})
                except Exception as exc:  # report every family, whatever breaks
                    rows.append({"family": name, "amp": str(amp),
                                 "error": f"{type(exc).__name__}: {exc}"[:300]})
                print(json.dumps(rows[-1], default=str), flush=True)
    text = table(rows)
    print(text)
    (out / "device_check.md").write_text(json.dumps(info) + "\n\n" + text + "\n")
    (out / "device_check.json").write_text(json.dumps({"info": info, "rows": rows}, indent=1,
                                                      default=str))
    return 1 if any("error" in r and not r["error"].startswith("skipped") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
