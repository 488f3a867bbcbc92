"""The layering and room sizes that docs/architecture.md states, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "tod_cleanse"
ADAPTERS = ROOT / "adapters"
#: Core modules may import these only inside functions (optional, heavy or integration).
NOT_AT_CORE_TOP_LEVEL = ("cleanlab", "pyarrow", "ray", "tod_cleanse.adapters", "tod_cleanse.cli")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _sources(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.py"))


def _core_sources() -> list[Path]:
    return [p for p in _sources(CORE) if "cli" not in p.relative_to(CORE).parts]


def _top_level_imports(tree: ast.Module, path: Path) -> list[str]:
    """Modules imported at module level (not inside a function or class body)."""
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package of ``path``
                package = path.relative_to(ROOT).with_suffix("").parts[: -node.level]
                base = ".".join(("tod_cleanse",) + tuple(package[1:]))
                names.append(f"{base}.{node.module}" if node.module else base)
            else:
                names.append(node.module or "")
    return names


def _function_body_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function without its docstring."""
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    if not body:
        return 0
    return body[-1].end_lineno - body[0].lineno + 1


@pytest.mark.parametrize("path", _core_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_never_imports_integrations_at_top_level(path: Path) -> None:
    tree = ast.parse(path.read_text())
    bad = [m for m in _top_level_imports(tree, path)
           if any(m == b or m.startswith(b + ".") for b in NOT_AT_CORE_TOP_LEVEL)]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad} at module level"


@pytest.mark.parametrize("path", _sources(CORE, ADAPTERS), ids=lambda p: str(p.relative_to(ROOT)))
def test_rooms_stay_small(path: Path) -> None:
    text = path.read_text()
    n_lines = text.count("\n")
    assert n_lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)}: {n_lines} lines"
    long = [
        f"{node.name} ({_function_body_lines(node)} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and _function_body_lines(node) > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.relative_to(ROOT)}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_checks_see_a_violation(tmp_path: Path) -> None:
    """The helpers above do flag what they look for (so a green run means something)."""
    src = "import ray\nfrom cleanlab import Datalab\n\ndef f():\n" + "    x = 1\n" * 81
    tree = ast.parse(src)
    fake = CORE / "fake.py"
    assert _top_level_imports(tree, fake) == ["ray", "cleanlab"]
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))
    assert _function_body_lines(fn) == 81
