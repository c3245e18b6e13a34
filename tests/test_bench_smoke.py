"""Every benchmark in bench/ runs at its `--smoke` size, so no benchmark rots.

House rule: performance targets live in benchmarks, and each has a tiny `--smoke` size that the
test suite runs (the 1M-judgment report bench once broke, unnoticed, when a migration added a
column). Each case runs `python bench/X.py --smoke` from the repository root in its own process
and checks the exit status and the line that compares ours with the peer measured in the same
run. Smoke figures mean nothing as performance numbers; only that every path still runs.

The PostgreSQL benchmarks (marked `postgres`) get the server of DATABASE_URL through `--pg` and
database names derived from its database (`bench_<db>_<bench>_smoke`), which they create and
drop themselves. The model benchmarks (`ml`) build the tests' tiny GPT-2 and run on CPU.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
CHROMIUM = "/usr/bin/chromium"
# Modules in bench/ that are helpers, not benchmarks.
HELPERS = {"common.py", "clustered_sim.py"}


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def postgres_args(bench: str) -> list[str]:
    """`--pg` (DATABASE_URL's server) and a `--db` of this test run's own."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    server = f"postgresql://{parts.netloc}"
    database = re.sub(r"[^A-Za-z0-9]", "_", parts.path.lstrip("/")) or "default"
    return ["--pg", server, "--db", f"bench_{database}_{bench}"]


def require_browser() -> None:
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(CHROMIUM)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package")
    if missing:
        reason = f"{' and '.join(missing)} missing"
        if running_in_ci():
            pytest.fail(f"{reason}; CI must install it")
        pytest.skip(f"{reason} (CI runs this benchmark)")


# script, marks, what its output must show (the ratio against the peer, and its own checks)
CASES = [
    ("bench_agreement.py", [], [r"speed-up: \d+x", r"point estimates differ by"]),
    ("bench_metrics.py", [], [r"ratio ours/direct \(min CPU\): [\d.]+"]),
    ("bench_ci_coverage.py", [], [r"ratio old/new [\d.]+x", r"win_rate_gate 1 distinct"]),
    ("bench_sequential.py", [], [r"ratio old/new [\d.]+x", r"^OK \(smoke\)"]),
    (
        "bench_perplexity.py",
        [pytest.mark.ml],
        [r"summary speedup batched/naive: short .*x; mixed .*x; long .*x"],
    ),
    ("bench_judge.py", [pytest.mark.ml], [r"speedup logprob/generate: [\d.]+x"]),
    (
        "bench_import.py",
        [pytest.mark.postgres],
        [r"ratio ours/COPY: whole path [\d.]+x", r"same rows written by both paths .*: True"],
    ),
    (
        "bench_rater_loop.py",
        [pytest.mark.postgres],
        [
            r"ratios: judgments/s vs bare DRF floor req/s = [\d.]+",
            r"=> OK: no over-assignment, no double judgment",
        ],
    ),
    (
        "profile_rater_loop.py",
        [pytest.mark.postgres],
        [r"ratio judgment \(next \+ submit\) / bare DRF request: CPU [\d.]+x"],
    ),
    (
        "bench_report.py",
        [pytest.mark.postgres],
        [r"report_sha256 [0-9a-f]{64}", r"\([\d.]+x peer\)", r"files identical: True"],
    ),
    (
        "bench_dashboard.py",
        [pytest.mark.postgres],
        [r"ratio dashboard/study page: [\d.]+x", r"figures agree with plain SQL counts: True"],
    ),
    (
        "bench_rater_page.py",
        [pytest.mark.browser],
        [r"ratio markdown/plain: median [\d.]+x, p95 [\d.]+x"],
    ),
]
SHORT_NAMES = {
    "bench_import.py": "import",
    "bench_rater_loop.py": "eval",
    "profile_rater_loop.py": "profile",
    "bench_report.py": "report",
    "bench_dashboard.py": "dashboard",
}


def test_every_benchmark_has_a_smoke_case() -> None:
    scripts = {p.name for p in BENCH.glob("*.py")} - HELPERS
    assert scripts == {script for script, _, _ in CASES}
    for script in scripts:
        assert '"--smoke"' in (BENCH / script).read_text(), f"{script} has no --smoke flag"


@pytest.mark.parametrize(
    ("script", "expected"),
    [pytest.param(script, expected, marks=marks, id=script) for script, marks, expected in CASES],
)
def test_benchmark_smoke(script: str, expected: list[str], request) -> None:
    command = [sys.executable, str(BENCH / script), "--smoke"]
    marks = {mark.name for mark in request.node.iter_markers()}
    if "postgres" in marks:
        command += postgres_args(SHORT_NAMES[script])
    if "ml" in marks:
        pytest.importorskip("torch")
        pytest.importorskip("transformers")
    if "browser" in marks:
        require_browser()
    completed = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=180, check=False
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"{script} --smoke exited {completed.returncode}:\n{output}"
    for pattern in expected:
        assert re.search(pattern, completed.stdout, re.MULTILINE), (
            f"{script} --smoke printed no line matching {pattern!r}:\n{output}"
        )
