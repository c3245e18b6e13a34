"""Code pass rate: run a Python answer against the item's tests in a subprocess.

Functional correctness in the style of HumanEval's pass@1 (Chen et al., 2021) with one sample:
an item passes when the model's code followed by the tests (``metadata["tests"]``: a string of
``assert`` statements or a list of them) runs to completion without an exception.

How the code runs (Linux):

* Inside a bubblewrap sandbox (``bwrap``, Debian package ``bubblewrap``): new user, PID, network,
  IPC, UTS and cgroup namespaces (``--unshare-all``), a new session, an empty environment, and a
  file system that holds only the Python runtime read-only (``/usr``, the ``/bin``, ``/lib*``
  links and the interpreter's prefix), a fresh ``/proc``, a minimal ``/dev``, an empty ``/tmp``
  and a fresh temporary directory as the only writable place. Nothing of the project, its
  settings, the home directory or the database socket is visible; there is no network at all (not
  even loopback to the host); when the run ends the PID namespace ends with it, so no process the
  answer started outlives it.
* ``python -I -B`` (isolated mode: no ``PYTHON*`` variables, no user site) of the base
  interpreter (a virtual environment's packages are not mounted); stdin is closed after a nonce,
  stdout is discarded.
* Wall-clock timeout (the whole process group is killed), plus CPU-time, address-space,
  file-size and core-dump limits set with ``resource.setrlimit`` in ``preexec_fn``.
* ``socket.socket`` is also replaced before user code runs, so a network attempt fails with a
  readable reason (the namespace is what actually blocks it).
* The code runs with ``__name__ == "__solution__"`` so ``if __name__ == "__main__":`` demo
  blocks do not run; an answer that calls ``sys.exit``/``os._exit`` before the tests finish fails.

Whether the sandbox works is probed once per process (:func:`sandbox_unavailable_reason`): with
``bwrap`` missing or user namespaces disabled, :func:`run_python_tests` raises
:class:`SandboxUnavailableError` with the reason, unless ``allow_unsandboxed`` is passed (the
admin setting ``CODE_EXEC_ALLOW_UNSANDBOXED=1``, for trusted code only): then the code runs as
the worker's own user with only the resource limits above, which protects against accidents,
not against hostile code. The metric is also skipped unless the study opted in
(``settings["code_execution_enabled"] is True``).

Study settings: ``code_timeout_s`` (default 5), ``code_cpu_s`` (default ``ceil(timeout) + 1``),
``code_memory_mb`` (default 512), ``code_extract_fence`` (default True: if the output contains a
fenced ```` ```python ````/```` ```py ````/bare block, the first such block is run, otherwise the
whole output; chat models fence code almost always, and not unwrapping it would measure
formatting rather than correctness).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoring.metrics.registry import MetricValue, register

__all__ = [
    "DEFAULT_LIMITS",
    "ExecLimits",
    "ExecResult",
    "SandboxUnavailableError",
    "extract_code",
    "join_tests",
    "limits_from_settings",
    "run_python_tests",
    "sandbox_unavailable_reason",
]

# Study settings never carry this key: the scoring service sets it from the admin setting.
ALLOW_UNSANDBOXED_KEY = "code_exec_allow_unsandboxed"
SANDBOX_DIR = "/sandbox"


class SandboxUnavailableError(RuntimeError):
    """The bubblewrap sandbox cannot run here and unsandboxed execution was not allowed."""


@dataclass(frozen=True, slots=True)
class ExecLimits:
    """Resource limits for one run: seconds, seconds of CPU, MiB of address space, bytes."""

    timeout_s: float = 5.0
    cpu_s: int | None = None  # None: ceil(timeout_s) + 1, so the wall clock normally fires first
    memory_mb: int = 512
    max_file_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        if not (self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            raise ValueError("timeout_s must be a positive number of seconds")
        if self.cpu_s is not None and self.cpu_s < 1:
            raise ValueError("cpu_s must be at least 1 second")
        if self.memory_mb < 64:
            # The interpreter alone maps tens of MiB; less makes every run fail at startup.
            raise ValueError("memory_mb must be at least 64")
        if self.max_file_bytes < 4096:
            raise ValueError("max_file_bytes must be at least 4096")


DEFAULT_LIMITS = ExecLimits()


@dataclass(frozen=True, slots=True)
class ExecResult:
    """Outcome of one run; ``reason`` is ``"passed"`` or a short failure description."""

    passed: bool
    reason: str
    duration_s: float

    @property
    def value(self) -> float:
        """1.0 when passed, else 0.0."""
        return 1.0 if self.passed else 0.0


_FENCE_RE = re.compile(r"```([^\n`]*)\r?\n(.*?)```", re.DOTALL)
_PY_LANGS = frozenset({"", "python", "python3", "py"})


def extract_code(output: str) -> str:
    """The first ```` ```python ````/```` ```py ````/bare fenced block, else ``output`` as is."""
    for match in _FENCE_RE.finditer(output):
        if match.group(1).strip().lower() in _PY_LANGS:
            return match.group(2)
    return output


def join_tests(tests: str | Sequence[str]) -> str:
    """Tests as one source string; raises ``ValueError`` unless str or sequence of str."""
    if isinstance(tests, str):
        return tests
    if isinstance(tests, Sequence) and all(isinstance(t, str) for t in tests):
        return "\n".join(tests)
    raise ValueError("metadata['tests'] must be a string or a list of strings")


# Runs in the child. Kept free of user-controlled text: code and tests are read from files.
_BOOTSTRAP = r"""
import json, os, socket, sys, traceback
nonce = sys.stdin.readline().strip()
result_path = os.path.abspath("result.json")

def _blocked(*args, **kwargs):
    raise OSError("network access is disabled during code evaluation")

class _NoSocket(socket.socket):
    def __init__(self, *args, **kwargs):
        _blocked()

socket.socket = socket.SocketType = _NoSocket
for _name in ("create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo",
              "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
    setattr(socket, _name, _blocked)
import _socket
_socket.socket = _socket.SocketType = _NoSocket
for _name in ("socketpair", "getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
    if hasattr(_socket, _name):
        setattr(_socket, _name, _blocked)

def _finish(status, message=""):
    with open(result_path, "w", encoding="utf-8") as fh:
        json.dump({"nonce": nonce, "status": status, "message": str(message)[:300]}, fh)
    os._exit(0)

def _where(exc, filename, source):
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == filename:
            lines = source.splitlines()
            line = lines[frame.lineno - 1].strip() if 0 < frame.lineno <= len(lines) else ""
            return f"{filename}:{frame.lineno}: {line}"
    return ""

with open("solution.py", encoding="utf-8") as fh:
    code = fh.read()
with open("tests.py", encoding="utf-8") as fh:
    tests = fh.read()
namespace = {"__name__": "__solution__", "__builtins__": __builtins__}
del fh
try:
    exec(compile(code, "solution.py", "exec"), namespace)
    exec(compile(tests, "tests.py", "exec"), namespace)
except SyntaxError as exc:
    _finish("syntax", f"{exc.filename}:{exc.lineno}: {exc.msg}")
except AssertionError as exc:
    detail = _where(exc, "tests.py", tests) or _where(exc, "solution.py", code)
    message = f"{detail} ({exc})" if str(exc) else detail
    _finish("assertion", message)
except MemoryError:
    _finish("memory")
except SystemExit as exc:
    _finish("exit", f"code {exc.code!r}")
except BaseException as exc:
    _finish("error", f"{type(exc).__name__}: {exc}")
_finish("passed")
"""


def _clamp(desired: int, kind: int) -> tuple[int, int]:
    # A child may lower but not raise its hard limit; never ask for more than the parent has.
    _, hard = resource.getrlimit(kind)
    value = desired if hard == resource.RLIM_INFINITY else min(desired, hard)
    return value, value


def _make_preexec(limits: ExecLimits) -> Callable[[], None]:
    cpu = limits.cpu_s if limits.cpu_s is not None else math.ceil(limits.timeout_s) + 1
    soft_cpu, _ = _clamp(cpu, resource.RLIMIT_CPU)
    # Soft CPU limit sends SIGXCPU; the hard limit one second later is SIGKILL.
    cpu_pair = (soft_cpu, _clamp(cpu + 1, resource.RLIMIT_CPU)[1])
    mem_pair = _clamp(limits.memory_mb * 1024 * 1024, resource.RLIMIT_AS)
    fsize_pair = _clamp(limits.max_file_bytes, resource.RLIMIT_FSIZE)

    # Runs between fork and exec: only plain syscalls, no allocation-heavy Python work.
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, cpu_pair)
        resource.setrlimit(resource.RLIMIT_AS, mem_pair)
        resource.setrlimit(resource.RLIMIT_FSIZE, fsize_pair)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return preexec


_STATUS_REASONS = {
    "syntax": "syntax error",
    "assertion": "assertion failed",
    "memory": "memory limit exceeded (MemoryError)",
    "exit": "exited before the tests finished",
    "error": "error",
}


def _signal_reason(returncode: int) -> str:
    signum = -returncode
    if signum == signal.SIGXCPU:
        return "CPU time limit exceeded"
    if signum == signal.SIGXFSZ:
        return "file size limit exceeded"
    if signum == signal.SIGKILL:
        return "killed (SIGKILL: CPU hard limit or out of memory)"
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = str(signum)
    return f"crashed ({name})"


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _base_interpreter() -> str:
    """The interpreter outside any virtual environment: a venv lives in the project tree,
    which the sandbox must not show."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _bwrap_path() -> str | None:
    found = shutil.which("bwrap")
    if found is None and os.access("/usr/bin/bwrap", os.X_OK):
        found = "/usr/bin/bwrap"  # a worker started with a bare PATH
    return found


def _bwrap_argv(workdir: str, env: Mapping[str, str]) -> list[str]:
    argv = [_bwrap_path() or "bwrap"]
    # --unshare-user too: --unshare-all only tries one, and a root worker must not run the
    # answer as root outside a user namespace (the probe then fails and the metric refuses).
    argv += ["--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", "--clearenv"]
    argv += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    prefix = os.path.realpath(sys.base_prefix)
    if prefix != "/usr" and not prefix.startswith("/usr/"):
        argv += ["--ro-bind", prefix, prefix]
    interpreter_dir = os.path.dirname(_base_interpreter())
    if not interpreter_dir.startswith(("/usr/", prefix + "/")):
        argv += ["--ro-bind", interpreter_dir, interpreter_dir]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]  # noqa: S108 - a fresh tmpfs
    argv += ["--bind", workdir, SANDBOX_DIR, "--chdir", SANDBOX_DIR]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return argv


def _sandbox_env() -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": SANDBOX_DIR,
        "TMPDIR": SANDBOX_DIR,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }


@functools.cache
def sandbox_unavailable_reason() -> str | None:
    """Why the bubblewrap sandbox cannot run here, or ``None`` when it works. Probed once per
    process (a real run of the interpreter inside it)."""
    if not sys.platform.startswith("linux"):
        return "the code sandbox needs Linux (bubblewrap)"
    if _bwrap_path() is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    with tempfile.TemporaryDirectory(prefix="eval-sandbox-probe-") as tmp:
        argv = [*_bwrap_argv(tmp, _sandbox_env()), _base_interpreter(), "-I", "-B", "-c", "pass"]
        try:
            probe = subprocess.run(  # noqa: S603 - fixed argv, no shell
                argv, capture_output=True, timeout=30, check=False, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bubblewrap could not start: {exc}"
    if probe.returncode != 0:
        detail = probe.stderr.decode("utf-8", "replace").strip()[:300]
        return (
            f"bubblewrap failed (exit {probe.returncode}): {detail or 'no message'}; "
            "are unprivileged user namespaces disabled (kernel.unprivileged_userns_clone, "
            "a container's seccomp profile)?"
        )
    return None


def run_python_tests(
    code: str,
    tests: str | Sequence[str],
    *,
    limits: ExecLimits = DEFAULT_LIMITS,
    allow_unsandboxed: bool = False,
) -> ExecResult:
    """Run ``code`` then ``tests`` in the sandbox; pass iff no exception escapes.

    Returns an :class:`ExecResult` (never raises for failures of the code under test). Raises
    ``ValueError`` for malformed ``tests`` and :class:`SandboxUnavailableError` when the sandbox
    cannot run and ``allow_unsandboxed`` is false (see the module docstring).
    """
    test_src = join_tests(tests)
    unavailable = sandbox_unavailable_reason()
    if unavailable is not None and not allow_unsandboxed:
        raise SandboxUnavailableError(
            f"code execution refused: {unavailable}. Install bubblewrap with user namespaces "
            "enabled, or (trusted code only) set CODE_EXEC_ALLOW_UNSANDBOXED=1"
        )
    sandboxed = unavailable is None
    nonce = secrets.token_hex(16)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="eval-code-", ignore_cleanup_errors=True) as tmp:
        workdir = Path(tmp)
        (workdir / "solution.py").write_text(code, encoding="utf-8")
        (workdir / "tests.py").write_text(test_src, encoding="utf-8")
        if sandboxed:
            argv = [*_bwrap_argv(tmp, _sandbox_env()), _base_interpreter()]
            env: dict[str, str] | None = {"PATH": "/usr/bin:/bin"}
        else:
            argv = [sys.executable]
            env = {
                **_sandbox_env(),
                "HOME": tmp,
                "TMPDIR": tmp,
                # Proxies pointing nowhere, for any library that bypasses the patched socket.
                "http_proxy": "http://127.0.0.1:9",
                "https_proxy": "http://127.0.0.1:9",
                "no_proxy": "",
            }
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [*argv, "-I", "-B", "-c", _BOOTSTRAP],
            cwd=tmp,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # own process group, so a timeout kills grandchildren too
            preexec_fn=_make_preexec(limits),  # only setrlimit calls, see _make_preexec
            close_fds=True,
        )
        timed_out = False
        try:
            proc.communicate(input=(nonce + "\n").encode(), timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            proc.wait()
        finally:
            # Background processes the answer may have started must not outlive the run (in
            # the sandbox the PID namespace ends with bwrap anyway).
            _kill_group(proc.pid)
        duration = time.monotonic() - start
        if timed_out:
            return ExecResult(False, f"timeout after {limits.timeout_s:g} s", duration)
        result = _read_result(workdir / "result.json", nonce)
    returncode = proc.returncode
    if sandboxed and returncode > 128:
        # bwrap reports a child killed by signal N as exit status 128 + N.
        returncode = 128 - returncode
    if result is None:
        if returncode < 0:
            return ExecResult(False, _signal_reason(returncode), duration)
        return ExecResult(
            False, f"exited before the tests finished (exit code {returncode})", duration
        )
    status, message = result
    if status == "passed":
        return ExecResult(True, "passed", duration)
    reason = _STATUS_REASONS.get(status, status)
    return ExecResult(False, f"{reason}: {message}" if message else reason, duration)


def _read_result(path: Path, nonce: str) -> tuple[str, str] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    # The nonce shows the bootstrap (not the code under test) wrote the file.
    if not isinstance(data, dict) or data.get("nonce") != nonce:
        return None
    return str(data.get("status", "error")), str(data.get("message", ""))


def limits_from_settings(settings: Mapping[str, Any]) -> ExecLimits:
    """:class:`ExecLimits` from study settings (``code_timeout_s``, ``code_cpu_s``,
    ``code_memory_mb``); raises ``ValueError`` for invalid values."""
    try:
        return ExecLimits(
            timeout_s=float(settings.get("code_timeout_s", DEFAULT_LIMITS.timeout_s)),
            cpu_s=None if settings.get("code_cpu_s") is None else int(settings["code_cpu_s"]),
            memory_mb=int(settings.get("code_memory_mb", DEFAULT_LIMITS.memory_mb)),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid code execution settings: {exc}") from exc


# --------------------------------------------------------------------------- registry adapters


@register(
    "code_pass",
    version="1",
    task_types=("code",),
    kind="task",
    level="item",
    needs=("metadata:tests",),
    enabled_by="code_execution_enabled",
    disabled_reason="code execution disabled (settings['code_execution_enabled'] is not True)",
)
def _code_pass_item(
    output: str,
    *,
    reference: str | None,
    label: str | None,
    metadata: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> MetricValue:
    """1/0: the (extracted) Python code passes metadata['tests']; detail gives the reason."""
    tests = join_tests(metadata["tests"])
    if not tests.strip():
        # Running code with no tests would "pass" anything.
        return MetricValue(None, "metadata['tests'] is empty")
    code = extract_code(output) if settings.get("code_extract_fence", True) is not False else output
    result = run_python_tests(
        code,
        tests,
        limits=limits_from_settings(settings),
        allow_unsandboxed=settings.get(ALLOW_UNSANDBOXED_KEY) is True,
    )
    return MetricValue(result.value, result.reason)
