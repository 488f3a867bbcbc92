"""The README's Python blocks run as written, and every page it links to exists."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_blocks_run_in_order() -> None:
    blocks = _python_blocks(README)
    assert len(blocks) >= 3, "the quick start lost its examples"
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fit-reliability or convergence warnings are not the point
        for block in blocks:
            exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    # what the blocks promise, checked on what they built
    est, cleanser, pipe = namespace["est"], namespace["cleanser"], namespace["pipe"]
    assert est.oos_proba_.shape == (len(namespace["y"]), 10)
    assert cleanser.issues_.shape[0] == len(namespace["y"])
    kept = pipe[-1].sample_indices_
    assert 0 < kept.size < len(namespace["y"])
    issues = namespace["issues"]
    assert issues.dtype == bool and issues.shape == namespace["y"].shape
    flipped = namespace["flipped"]
    # the one-run pred_probs find mostly flipped rows (a weak bound: this is a docs test)
    assert flipped[issues].mean() > 0.5
    X_kept = namespace["X_kept"]
    assert X_kept.shape[0] == len(namespace["y"]) - int(cleanser.issues_["is_issue"].sum())


def test_readme_links_point_at_files() -> None:
    links = re.findall(r"\]\(((?:docs|examples)/[^)#]+)", README)
    assert links, "no links found: the regular expression is out of date"
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_readme_stays_short() -> None:
    assert README.count("\n") <= 250
