"""scoring.stats stays pure: no Django, DRF, Celery, torch, transformers or annotations."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import scoring.stats

FORBIDDEN = ("django", "rest_framework", "celery", "torch", "transformers", "annotations")
PACKAGE_DIR = Path(scoring.stats.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE_DIR.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("path", sorted(PACKAGE_DIR.glob("*.py")), ids=lambda p: p.name)
def test_no_forbidden_imports_in_source(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def test_importing_every_module_loads_no_forbidden_package() -> None:
    imports = "; ".join(f"import scoring.stats.{m}" for m in MODULES)
    check = (
        f"{imports}; import sys; "
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}); "
        "print(','.join(bad))"
    )
    root = PACKAGE_DIR.parent.parent
    out = subprocess.run(
        [sys.executable, "-c", check], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
