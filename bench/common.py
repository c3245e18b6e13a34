"""Helpers shared by the PostgreSQL benchmarks: throwaway databases, Django set-up, CPU counters.

Every database these helpers create or drop is named by the caller and must start with
``bench_``, so a benchmark can never drop somebody else's database by mistake.
"""

from __future__ import annotations

import atexit
import json
import os
import shlex
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432"


SMOKE_SUFFIX = "_smoke"


def smoke_name(name: str) -> str:
    """The database a ``--smoke`` run uses instead of `name`, so a smoke run (the test suite's)
    never touches a full-size run's databases; still a ``bench_`` name."""
    return name if name.endswith(SMOKE_SUFFIX) else name + SMOKE_SUFFIX


def database_url(server: str, name: str) -> str:
    return f"{server.rstrip('/')}/{name}"


def admin_connect(server: str):
    import psycopg

    return psycopg.connect(database_url(server, "postgres"), autocommit=True)


def check_bench_name(name: str) -> None:
    if not name.startswith("bench_") or not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing to touch database {name!r}: bench databases start with bench_")


def database_recreate(server: str, name: str, *, template: str | None = None) -> None:
    """Drops `name` (closing its connections) and creates it empty or as a copy of `template`."""
    check_bench_name(name)
    if template is not None:
        check_bench_name(template)
    with admin_connect(server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if template is None:
            conn.execute(f'CREATE DATABASE "{name}"')
        else:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


def database_drop(server: str, name: str) -> None:
    check_bench_name(name)
    with admin_connect(server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_at_exit(server: str, *names: str) -> None:
    """Drops these databases when the process exits, however it exits (smoke runs: a failed
    migration, the very thing a smoke run is there to catch, must not leave them behind)."""

    def drop() -> None:
        for name in names:
            try:
                database_drop(server, name)
            except Exception as exc:  # noqa: BLE001 - exiting anyway; say what was left
                print(f"could not drop database {name}: {exc}", file=sys.stderr)

    atexit.register(drop)


def django_env(url: str, **extra: str) -> dict[str, str]:
    """Production-like settings (DEBUG off) that work over plain HTTP on 127.0.0.1."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        DEBUG="0",
        SECRET_KEY=env.get("BENCH_SECRET_KEY", "bench-" + "x" * 60),
        ALLOWED_HOSTS="127.0.0.1,testserver",
        SECURE_SSL_REDIRECT="0",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        SECURE_HSTS_SECONDS="0",
        SECURE_HSTS_PRELOAD="0",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="0",
        LOG_LEVEL="ERROR",
    )
    env.update(extra)
    return env


def migrate(url: str, apps: Sequence[str] = ()) -> None:
    """`manage.py migrate` (every app, or only `apps` and what they depend on)."""
    for app in apps or [None]:
        subprocess.run(
            [PYTHON, "manage.py", "migrate", *([app] if app else []), "--noinput", "-v", "0"],
            cwd=REPO,
            env=django_env(url),
            check=True,
        )


def django_setup(url: str) -> None:
    """Configures Django in this process against `url` (call once, before any model import)."""
    os.environ.update(django_env(url))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalplatform.settings")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import django

    # No connection pool in the bench's own process: its seeding and probes are not measured,
    # and pooled sessions would keep the database busy (CREATE DATABASE ... TEMPLATE needs it
    # idle). Removed again after set-up so servers the bench starts keep the default pool.
    previous = os.environ.get("DB_POOL_MAX_SIZE")
    os.environ["DB_POOL_MAX_SIZE"] = "0"
    try:
        django.setup()
    finally:
        if previous is None:
            os.environ.pop("DB_POOL_MAX_SIZE", None)
        else:
            os.environ["DB_POOL_MAX_SIZE"] = previous


def reproduce_line(argv: Sequence[str] | None = None) -> str:
    args = list(sys.argv if argv is None else argv)
    script = os.path.relpath(args[0], REPO) if args else "bench/?.py"
    command = shlex.join([".venv/bin/python", script, *args[1:]])
    return f"cd {shlex.quote(str(REPO))} && {command}"


# --- statistics -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; nan for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(round(q / 100 * len(ordered) + 0.5))))
    return ordered[rank - 1]


def latency_summary(seconds: Sequence[float]) -> str:
    if not seconds:
        return "n=0"
    ms = [s * 1000 for s in seconds]
    return (
        f"n={len(ms):6d}  p50={percentile(ms, 50):7.2f}  p95={percentile(ms, 95):7.2f}  "
        f"p99={percentile(ms, 99):7.2f}  mean={statistics.fmean(ms):7.2f}  "
        f"max={max(ms):7.2f} ms"
    )


# --- CPU accounting (Linux /proc) -----------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may hold spaces; fields after the closing parenthesis are well-formed.
    return [raw[raw.index("(") + 1 : raw.rindex(")")], *raw[raw.rindex(")") + 2 :].split()]


def process_cpu_seconds(pids: Iterable[int]) -> float:
    """utime + stime of the given processes (threads included), in seconds."""
    total = 0
    for pid in pids:
        fields = proc_stat(pid)
        if fields is not None:
            total += int(fields[12]) + int(fields[13])
    return total / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = proc_stat(int(entry.name))
            if fields is not None and int(fields[2]) == pid:
                found.append(int(entry.name))
    return found


def postgres_backends(database: str) -> list[int]:
    """Server processes serving connections to `database` (their title names it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # "postgres: [cluster: ]user database host(port) state"
        words = title.split()
        if words[:1] == ["postgres:"] and database in words[2:4]:
            found.append(int(entry.name))
    return found


def system_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    parts = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return float(total - idle), float(total)


class CpuMeter:
    """CPU seconds spent by groups of processes between start() and stop().

    A group is a list of pids, a callable returning the current pids (re-read at stop, so
    processes started meanwhile count; ones that exited meanwhile are lost), or None for this
    process."""

    def __init__(self, groups: dict[str, Any]) -> None:
        self.groups = groups
        self.before: dict[str, dict[int, float]] = {}
        self.after: dict[str, dict[int, float]] = {}
        self.sys_before = (0.0, 0.0)
        self.sys_after = (0.0, 0.0)

    def sample(self) -> dict[str, dict[int, float]]:
        values = {}
        for name, pids in self.groups.items():
            if pids is None:
                times = os.times()
                values[name] = {0: times.user + times.system}
            else:
                found = pids() if callable(pids) else pids
                values[name] = {pid: process_cpu_seconds([pid]) for pid in found}
        return values

    def start(self) -> None:
        self.before = self.sample()
        self.sys_before = system_cpu()

    def stop(self) -> None:
        self.after = self.sample()
        self.sys_after = system_cpu()

    def used(self) -> dict[str, float]:
        """CPU seconds per group, plus "other" (everything else on the machine) and "machine"."""
        used = {
            name: sum(
                max(0.0, cpu - self.before[name].get(pid, 0.0))
                for pid, cpu in self.after[name].items()
            )
            for name in self.groups
        }
        busy = (self.sys_after[0] - self.sys_before[0]) / CLOCK_TICKS
        used["other"] = max(0.0, busy - sum(used.values()))
        used["machine"] = busy
        return used

    def report(self, elapsed: float, per: int | None = None, unit: str = "") -> str:
        """CPU use in % of one core; with `per`, also CPU milliseconds per unit of work."""
        cores = os.cpu_count() or 1
        used = self.used()
        parts = [f"{name} {100 * used[name] / elapsed:5.1f}%" for name in self.groups]
        parts.append(f"other processes {100 * used['other'] / elapsed:5.1f}%")
        text = (
            "CPU (100% = one core): "
            + ", ".join(parts)
            + f"; machine {100 * used['machine'] / elapsed:5.1f}% of {cores * 100}%"
        )
        if per:
            costs = ", ".join(f"{name} {1000 * used[name] / per:.2f}" for name in self.groups)
            ours = sum(used[name] for name in self.groups)
            text += (
                f"\n    CPU ms per {unit}: {costs}; total {1000 * ours / per:.2f}"
                f" => {cores} idle cores would allow ~{per * cores / ours if ours else 0:.0f}"
                f" {unit}s/s"
            )
        return text


def run_child(script: str, mode: str, url: str, options: dict[str, Any]) -> dict:
    """`script --child MODE --url URL --KEY VALUE ...` in a fresh process (so one measurement
    never inflates the next one's peak RSS) under the benchmark's Django settings; the JSON of
    the last `RESULT {...}` line it prints. Its output is shown when it fails."""
    command = [PYTHON, str(script), "--child", mode, "--url", url]
    for key, value in options.items():
        command += [f"--{key}", str(value)]
    proc = subprocess.run(command, cwd=REPO, env=django_env(url), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"child {mode} failed with exit status {proc.returncode}")
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])
