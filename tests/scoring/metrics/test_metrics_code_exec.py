"""Code execution metric: pass/fail, limits, network blocking, opt-in gate."""

from __future__ import annotations

import sys

import pytest

from scoring.metrics import code_exec
from scoring.metrics.code_exec import ExecLimits, extract_code, run_python_tests
from scoring.metrics.registry import score_outputs
from tests.scoring.metrics.test_code_sandbox import _sandbox_works  # noqa: F401 - autouse

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")

# Generous wall clock for runs that must end on their own (CI machines can be slow to start a
# process); the infinite-loop test uses a 1 s timeout.
FAST = ExecLimits(timeout_s=5.0, memory_mb=256)
SOLUTION = "def add(a, b):\n    return a + b\n"


def test_passing_code() -> None:
    result = run_python_tests(SOLUTION, ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"])
    assert result.passed and result.value == 1.0 and result.reason == "passed"


def test_failing_assert_names_the_line() -> None:
    result = run_python_tests(SOLUTION, "assert add(1, 2) == 3\nassert add(2, 2) == 5")
    assert not result.passed and result.value == 0.0
    assert result.reason.startswith("assertion failed: tests.py:2: assert add(2, 2) == 5")


def test_errors_and_syntax_errors_fail() -> None:
    assert run_python_tests("", "assert add(1, 2) == 3").reason.startswith("error: NameError")
    assert run_python_tests("def f(:", "pass").reason.startswith("syntax error")


def test_infinite_loop_hits_wall_clock_timeout() -> None:
    limits = ExecLimits(timeout_s=1.0)
    result = run_python_tests("while True:\n    pass\n", "assert True", limits=limits)
    assert not result.passed
    assert result.reason == "timeout after 1 s"
    assert result.duration_s < 4


def test_cpu_limit_stops_busy_code_before_the_wall_clock() -> None:
    limits = ExecLimits(timeout_s=20.0, cpu_s=1, memory_mb=256)
    result = run_python_tests("while True:\n    pass\n", "", limits=limits)
    assert not result.passed
    assert "CPU" in result.reason
    assert result.duration_s < 15


@pytest.mark.parametrize(
    "bomb",
    [
        "x = bytearray(8 * 1024 ** 3)\n",
        "chunks = []\nwhile True:\n    chunks.append(bytearray(10 ** 7))\n",
    ],
)
def test_memory_bomb_is_limited(bomb: str) -> None:
    result = run_python_tests(bomb, "assert True", limits=FAST)
    assert not result.passed
    assert "memory" in result.reason.lower()
    assert result.duration_s < FAST.timeout_s  # stopped by the limit, not the timeout


def test_network_attempt_fails() -> None:
    code = "import socket\nsocket.create_connection(('127.0.0.1', 80), timeout=0.5)\n"
    result = run_python_tests(code, "assert True", limits=FAST)
    assert not result.passed
    assert "network access is disabled" in result.reason


def test_raw_socket_creation_is_blocked() -> None:
    code = (
        "import socket, _socket\n"
        "blocked = []\n"
        "for make in (lambda: socket.socket(), lambda: _socket.socket()):\n"
        "    try:\n"
        "        make()\n"
        "    except OSError:\n"
        "        blocked.append(True)\n"
    )
    assert run_python_tests(code, "assert blocked == [True, True]", limits=FAST).passed


def test_child_runs_isolated_in_a_fresh_directory() -> None:
    code = "import os, sys\ncwd = os.getcwd()\nfiles = sorted(os.listdir('.'))\n"
    tests = (
        "assert cwd == '/sandbox'\n"
        "assert files == ['solution.py', 'tests.py']\n"
        "assert sys.flags.isolated == 1\n"
        "assert 'DJANGO_SETTINGS_MODULE' not in os.environ\n"
    )
    assert run_python_tests(code, tests, limits=FAST).passed


def test_exiting_early_is_not_a_pass() -> None:
    assert not run_python_tests("import os\nos._exit(0)\n", "assert False", limits=FAST).passed
    result = run_python_tests("import sys\nsys.exit(0)\n", "assert False", limits=FAST)
    assert result.reason.startswith("exited before the tests finished")


def test_main_guard_does_not_run() -> None:
    code = SOLUTION + "if __name__ == '__main__':\n    raise SystemExit(1)\n"
    assert run_python_tests(code, "assert add(1, 1) == 2", limits=FAST).passed


def test_extract_code_takes_first_python_block() -> None:
    output = "Sure!\n```bash\nls\n```\nThen:\n```python\nx = 1\n```\n```python\nx = 2\n```"
    assert extract_code(output) == "x = 1\n"
    assert extract_code("x = 3") == "x = 3"


def test_bad_tests_and_limits_raise() -> None:
    with pytest.raises(ValueError, match="string or a list"):
        run_python_tests("", [1, 2])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="memory_mb"):
        ExecLimits(memory_mb=1)
    with pytest.raises(ValueError, match="timeout_s"):
        ExecLimits(timeout_s=0)


def test_disabled_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("code must not run unless the study enabled it")

    monkeypatch.setattr(code_exec, "run_python_tests", must_not_run)
    for conf in ({}, {"code_execution_enabled": "true"}, {"code_execution_enabled": 1}):
        report = score_outputs(
            "code", [SOLUTION], metadatas=[{"tests": "assert True"}], settings=conf
        )
        assert report.items == ()
        (skip,) = report.skipped
        assert skip.metric == "code_pass"
        assert skip.reason.startswith("code execution disabled")


def test_enabled_study_scores_items_with_reasons() -> None:
    outputs = [f"```python\n{SOLUTION}```", "def add(a, b):\n    return a - b\n", SOLUTION]
    metadatas = [
        {"tests": ["assert add(2, 3) == 5"]},
        {"tests": "assert add(2, 3) == 5"},
        {},  # no tests for this item
    ]
    report = score_outputs(
        "code",
        outputs,
        metadatas=metadatas,
        settings={"code_execution_enabled": True, "code_timeout_s": 2},
    )
    assert report.item_values("code_pass") == [1.0, 0.0, None]
    assert [s.detail for s in report.items] == [
        "passed",
        "assertion failed: tests.py:1: assert add(2, 3) == 5",
    ]
    (skip,) = report.skipped
    assert skip.reason == "no metadata['tests']" and skip.item_indices == (2,)
