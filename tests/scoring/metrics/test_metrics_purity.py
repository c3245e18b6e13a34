"""scoring.metrics stays pure: no Django/ML imports, no mutable default arguments."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
METRICS_DIR = ROOT / "scoring" / "metrics"
FORBIDDEN = ("django", "rest_framework", "celery", "torch", "transformers", "annotations")
SOURCES = sorted(METRICS_DIR.rglob("*.py"))


def test_sources_found() -> None:
    names = {p.name for p in SOURCES}
    assert {"registry.py", "generation.py", "code_exec.py", "advice.py"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_forbidden_imports_in_source(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        for module in modules:
            assert module.split(".")[0] not in FORBIDDEN, f"{path.name} imports {module}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_mutable_default_arguments(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    mutable = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            defaults = [*node.args.defaults, *node.args.kw_defaults]
            for default in defaults:
                assert not isinstance(default, mutable), f"{path.name}:{default.lineno}"


def test_loading_every_metric_imports_nothing_forbidden() -> None:
    # Fresh interpreter: transitive imports (sklearn, rouge-score, nltk, ...) count too.
    script = (
        "import sys\n"
        "from scoring.metrics import registry, aggregate, advice\n"
        "registry.all_metrics()\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
