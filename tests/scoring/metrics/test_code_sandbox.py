"""A hostile answer run by the code pass-rate metric is confined by bubblewrap: it reads nothing
of the project or the home directory, reaches no socket (not even by starting a fresh
interpreter, which undoes the in-process socket patch) and leaves no process behind."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from scoring.metrics import code_exec
from scoring.metrics.code_exec import (
    ExecLimits,
    SandboxUnavailableError,
    run_python_tests,
    sandbox_unavailable_reason,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bubblewrap: Linux")

ROOT = Path(__file__).resolve().parents[3]
LIMITS = ExecLimits(timeout_s=15.0, memory_mb=256)


@pytest.fixture(autouse=True)
def _sandbox_works() -> None:
    # CI installs bubblewrap (.ci/run); a machine without it must not pass these silently.
    reason = sandbox_unavailable_reason()
    if reason is not None and os.environ.get("CI"):
        pytest.fail(f"the code sandbox must work in CI: {reason}")
    if reason is not None:
        pytest.skip(reason)


def run(code: str, tests: str) -> code_exec.ExecResult:
    return run_python_tests(code, tests, limits=LIMITS)


def test_answer_reads_no_project_file_nor_home() -> None:
    home = Path.home()
    prefix = Path(os.path.realpath(sys.base_prefix))
    # Everything in the home directory except the way down to a bound interpreter prefix.
    home_entries = [
        str(home / name)
        for name in os.listdir(home)
        if not (prefix == home / name or (home / name) in prefix.parents)
    ]
    secrets = [
        str(ROOT / "evalplatform" / "settings.py"),
        str(ROOT / "manage.py"),
        str(ROOT),
        "/etc/passwd",
        "/var/run/postgresql",
        *home_entries,
    ]
    assert Path(secrets[0]).exists()
    result = run(
        "import os\n"
        f"SECRETS = {secrets!r}\n"
        "visible = [p for p in SECRETS if os.path.exists(p)]\n"
        "def read(path):\n"
        "    try:\n"
        "        with open(path) as fh:\n"
        "            return fh.read()\n"
        "    except OSError:\n"
        "        return None\n",
        "assert visible == [], visible\n"
        f"assert read({secrets[0]!r}) is None\n"
        "assert os.listdir('/') and 'work' not in os.listdir('/')\n"
        "open('/sandbox/scratch.txt', 'w').write('ok')\n"
        "for ro in ('/usr/evil.txt', '/tmp/../usr/x'):\n"
        "    try:\n"
        "        open(ro, 'w')\n"
        "    except OSError:\n"
        "        pass\n"
        "    else:\n"
        "        raise AssertionError(ro + ' is writable')\n",
    )
    assert result.passed, result.reason


# A fresh interpreter started by the answer has an unpatched socket module: only the network
# namespace stands between it and the database.
NET_PROBE = r"""
import socket, sys
out = []
for family, address in ((socket.AF_INET, ("127.0.0.1", 5432)),
                        (socket.AF_UNIX, "/var/run/postgresql/.s.PGSQL.5432"),
                        (socket.AF_UNIX, "/tmp/.s.PGSQL.5432")):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(address)
        out.append("connected")
    except OSError as exc:
        out.append("refused")
print(",".join(out))
"""


def test_answer_opens_no_socket_even_from_a_fresh_interpreter() -> None:
    result = run(
        "import subprocess, sys\n"
        f"probe = subprocess.run([sys.executable, '-I', '-c', {NET_PROBE!r}],\n"
        "                       capture_output=True, text=True, timeout=10)\n"
        "answer = probe.stdout.strip()\n",
        "assert answer == 'refused,refused,refused', (answer, probe.stderr[-300:])\n",
    )
    assert result.passed, result.reason


def test_answer_leaves_no_process_behind() -> None:
    token = f"sandbox-leftover-{os.getpid()}-{time.monotonic_ns()}"
    code = (
        "import os, sys\n"
        "if os.fork() == 0:\n"
        "    os.setsid()  # leaves the process group the runner kills\n"
        f"    os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', {token!r}])\n"
    )
    try:
        result = run(code, "pass\n")
        assert result.passed, result.reason
        time.sleep(0.5)
        assert leftovers(token) == []
    finally:
        for pid in leftovers(token):
            os.kill(pid, signal.SIGKILL)


def leftovers(token: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in cmdline:
            found.append(int(entry.name))
    return found


def test_without_sandbox_the_metric_refuses_unless_the_admin_allows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        code_exec, "sandbox_unavailable_reason", lambda: "bubblewrap is not installed"
    )
    with pytest.raises(SandboxUnavailableError, match="bubblewrap is not installed"):
        run("x = 1\n", "assert x == 1\n")
    assert run_python_tests(
        "x = 1\n", "assert x == 1\n", limits=LIMITS, allow_unsandboxed=True
    ).passed
