"""Benchmark: the rater loop (next pair, submit judgment) over HTTP through gunicorn + PostgreSQL.

What it does, in one run:

1. Creates a fresh PostgreSQL database (``bench_eval`` by default; only ``bench_*`` names are
   accepted), migrates it with ``manage.py migrate``, then seeds it through our services: one
   open study (5,000 items, overlap k=3), 50 rater users with DRF tokens, and a 51st "probe"
   rater. The probe does a few next/submit cycles in-process through DRF's test client with
   ``CaptureQueriesContext`` to count SQL queries per request. The seeded database is kept as a
   template, so every gunicorn configuration starts from the same state.
2. Measures, with no server running, a bare psycopg single-row ``UPDATE`` round trip
   (autocommit, one connection, in a loop) -- the floor of one committed write.
3. For each gunicorn configuration (``--configs``): clones the template, starts gunicorn on a
   free 127.0.0.1 port with ``DEBUG=0``, then runs 50 keep-alive HTTP clients (one asyncio
   loop, a minimal raw HTTP/1.1 client so the load generator stays light on the 2 cores):

   * floor: saturated ``GET /api/v1/me/`` (the bare DRF endpoint: token auth, then a 200 with
     the username and roles, no query beyond the auth's one: the framework floor) and
     saturated ``GET /api/v1/me/studies/`` (token auth + role check + one aggregate query);
   * paced: each rater does next + submit once a second; p50/p95/p99 per request type;
   * saturated: each rater does next + submit with no pause; judgments/s;
   * afterwards, SQL checks that no item holds more than k judgments (or judgments plus live
     leases), that no (item, rater) pair is judged twice, and that every judged assignment has
     exactly one judgment.

CPU use of the client, gunicorn and PostgreSQL is read from /proc during the saturated phase.
Usage: ``.venv/bin/python bench/bench_rater_loop.py [--configs gthread-4x4,gthread-2x8,sync-6]``.
``--smoke`` (200 items, 4 raters, one gthread-1x2 server, 1-2 s per phase, databases
``<db>_smoke`` and ``<db>_smoke_tpl``, always dropped) runs every phase and check in about 15 s;
the test suite runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

GUNICORN = str(Path(sys.executable).parent / "gunicorn")
SLUG = "bench-rater-loop"
PROBE_SLUG = "bench-probe"
PASSWORD = "bench-password-123"
CHOICE_BODY = b'{"choice": "1"}'
FILLER = (
    "The answer walks through the reasoning step by step, cites the relevant facts and ends "
    "with a short summary of the trade-offs involved. "
)


# --- seeding (in this process, through our services) ----------------------------------------


def pair_jsonl(n: int, *, prefix: str) -> bytes:
    lines = []
    for i in range(n):
        lines.append(
            json.dumps(
                {
                    "id": f"{prefix}-{i:06d}",
                    "prompt": f"Question {i}: explain topic {i} in a few paragraphs. " * 3,
                    "base": f"Base answer {i}. " + FILLER * 5,
                    "tuned": f"Tuned answer {i}. " + FILLER * 6,
                    "reference": f"Reference {i}.",
                }
            )
        )
    return ("\n".join(lines) + "\n").encode()


def seed(*, items: int, overlap: int, raters: int) -> dict:
    from django.db import connection
    from django.test import override_settings
    from rest_framework.authtoken.models import Token

    from annotations import services
    from annotations.importers import parse_jsonl

    # Users get real passwords through the real service, hashed with a fast hasher: 51
    # PBKDF2 hashes would only slow the set-up down, and tokens are what the clients use.
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        users = [
            services.user_create(username=f"bench-rater-{i:03d}", password=PASSWORD, role="rater")
            for i in range(raters)
        ]
        probe = services.user_create(username="bench-probe", password=PASSWORD, role="rater")
    tokens = [Token.objects.create(user=u).key for u in users]
    probe_token = Token.objects.create(user=probe).key
    started = time.perf_counter()
    study = services.study_create(
        slug=SLUG,
        name="Rater loop benchmark",
        task_type="generation",
        overlap=overlap,
        status="open",
        base_model="bench-base",
        tuned_model="bench-tuned",
    )
    parsed = parse_jsonl(pair_jsonl(items, prefix="q"), file="bench.jsonl")
    services.items_import(study=study, parsed=parsed, source="bench.jsonl")
    services.raters_assign(study=study, usernames=[u.username for u in users] + [probe.username])
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {
        "tokens": tokens,
        "probe_token": probe_token,
        "study_id": study.pk,
        "seed_seconds": seconds,
    }


def probe_queries(token: str, cycles: int = 20) -> list[str]:
    """SQL queries and in-process time per request for next and submit, via DRF's test client
    with token auth (the same middleware and view stack as gunicorn, without HTTP)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    counts: dict[str, list[int]] = {"next": [], "submit": []}
    times: dict[str, list[float]] = {"next": [], "submit": []}
    examples: dict[str, list[str]] = {}
    for _ in range(cycles):
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            response = client.get(f"/api/v1/queue/next/?study={SLUG}")
            times["next"].append(time.perf_counter() - started)
        assert response.status_code == 200, response.content
        counts["next"].append(len(ctx.captured_queries))
        examples["next"] = [q["sql"] for q in ctx.captured_queries]
        assignment = response.json()["assignment"]
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            response = client.post(
                f"/api/v1/assignments/{assignment}/judgment/", {"choice": "1"}, format="json"
            )
            times["submit"].append(time.perf_counter() - started)
        assert response.status_code == 201, response.content
        counts["submit"].append(len(ctx.captured_queries))
        examples["submit"] = [q["sql"] for q in ctx.captured_queries]
    lines = []
    for kind in ("next", "submit"):
        ms = [t * 1000 for t in times[kind][2:]]
        lines.append(
            f"  {kind:6s}: {max(counts[kind])} SQL queries per request (min {min(counts[kind])});"
            f" in-process p50 {common.percentile(ms, 50):.2f} ms, "
            f"p95 {common.percentile(ms, 95):.2f} ms (sequential, {cycles} cycles)"
        )
    if os.environ.get("BENCH_SHOW_QUERIES"):
        for kind, sqls in examples.items():
            lines.append(f"  -- queries of the last {kind}:")
            lines.extend(f"     {sql[:400]}" for sql in sqls)
    return lines


# --- floors ---------------------------------------------------------------------------------


def pg_update_floor(url: str, seconds: float) -> tuple[float, list[float]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (id int PRIMARY KEY, n bigint)")
        conn.execute("INSERT INTO bench_floor VALUES (1, 0) ON CONFLICT DO NOTHING")
        cursor = conn.cursor()
        latencies = []
        started = time.perf_counter()
        end = started + seconds
        while (t0 := time.perf_counter()) < end:
            cursor.execute("UPDATE bench_floor SET n = n + 1 WHERE id = 1")
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


# --- a minimal keep-alive HTTP/1.1 client ---------------------------------------------------


class HttpConnection:
    """One keep-alive connection; requests are sequential (one rater = one connection)."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.head = f"Host: 127.0.0.1:{port}\r\nAuthorization: Token {token}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connects = 0

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(
        self, method: str, path: str, body: bytes | None = None, extra_head: str = ""
    ):
        """Returns (status, body, seconds). `extra_head`: more header lines, each ending CRLF."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.connects += 1
        if body is None:
            data = f"{method} {path} HTTP/1.1\r\n{self.head}{extra_head}\r\n".encode()
        else:
            data = (
                f"{method} {path} HTTP/1.1\r\n{self.head}{extra_head}"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
        started = time.perf_counter()
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        chunked = close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            payload = b"".join(parts)
        else:
            payload = await self.reader.readexactly(length) if length else b""
        elapsed = time.perf_counter() - started
        if close:
            await self.close()
        return status, payload, elapsed


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"next": [], "submit": []})
    statuses: dict[str, Counter] = field(
        default_factory=lambda: {"next": Counter(), "submit": Counter()}
    )
    judged_at: list[float] = field(default_factory=list)
    exhausted: int = 0
    errors: Counter = field(default_factory=Counter)


async def rater(
    conn: HttpConnection, stats: Stats, *, start: float, stop: float, pace: float | None
) -> None:
    next_path = f"/api/v1/queue/next/?study={SLUG}"
    tick = start + (random.random() * pace if pace else 0.0)
    if pace:
        await asyncio.sleep(max(0.0, tick - time.perf_counter()))
    while time.perf_counter() < stop:
        try:
            status, payload, seconds = await conn.request("GET", next_path)
            stats.latencies["next"].append(seconds)
            stats.statuses["next"][status] += 1
            if status == 204:
                stats.exhausted += 1
                return
            if status != 200:
                await asyncio.sleep(0.05)
                continue
            assignment = json.loads(payload)["assignment"]
            # As the rating page sends it: the server stores the key with the judgment.
            status, payload, seconds = await conn.request(
                "POST",
                f"/api/v1/assignments/{assignment}/judgment/",
                CHOICE_BODY,
                extra_head=f"Idempotency-Key: {uuid.uuid4()}\r\n",
            )
            done = time.perf_counter()
            stats.latencies["submit"].append(seconds)
            stats.statuses["submit"][status] += 1
            if status == 201:
                stats.judged_at.append(done)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            stats.errors[type(exc).__name__] += 1
            await conn.close()
            await asyncio.sleep(0.05)
        if pace:
            tick += pace
            now = time.perf_counter()
            while tick < now:  # fell behind: skip the missed ticks, do not burst
                tick += pace
            await asyncio.sleep(tick - now)


async def hammer(conn: HttpConnection, path: str, stop: float, out: list, statuses: Counter):
    while time.perf_counter() < stop:
        try:
            status, _, seconds = await conn.request("GET", path)
        except (OSError, asyncio.IncompleteReadError) as exc:
            statuses[type(exc).__name__] += 1
            await conn.close()
            continue
        out.append(seconds)
        statuses[status] += 1


# --- gunicorn -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    name: str
    worker_class: str
    workers: int
    threads: int

    @classmethod
    def parse(cls, text: str) -> ServerConfig:
        # gthread-4x4 (workers x threads) or sync-6 (workers)
        kind, _, shape = text.partition("-")
        if kind == "gthread":
            workers, _, threads = shape.partition("x")
            return cls(text, "gthread", int(workers), int(threads))
        if kind == "sync":
            return cls(text, "sync", int(shape), 1)
        raise SystemExit(f"unknown server config {text!r} (use gthread-WxT or sync-W)")

    def args(self) -> list[str]:
        args = ["--workers", str(self.workers), "--worker-class", self.worker_class]
        if self.worker_class == "gthread":
            args += ["--threads", str(self.threads)]
        return args


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(config: ServerConfig, url: str, token: str, log: Path, extra: list[str]):
    port = free_port()
    command = [
        GUNICORN,
        "evalplatform.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        *config.args(),
        "--keep-alive",
        "10",
        "--backlog",
        "2048",
        "--log-level",
        "warning",
        *extra,
    ]
    # Persistent connections that outlive the run: with the default 60 s, every worker
    # thread would reconnect during the measurements (and backends would come and go).
    env = common.django_env(url, ALLOWED_HOSTS="127.0.0.1", DB_CONN_MAX_AGE="600")
    handle = log.open("w")
    process = subprocess.Popen(
        command, cwd=common.REPO, env=env, stdout=handle, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}; see {log}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/v1/me/studies/", headers={"Authorization": f"Token {token}"})
            if conn.getresponse().status == 200:
                conn.close()
                return process, port, " ".join(command[1:])
            conn.close()
        except OSError:
            pass
        time.sleep(0.3)
    process.terminate()
    raise SystemExit(f"gunicorn did not answer within 60 s; see {log}")


def stop_gunicorn(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- correctness checks after a run ---------------------------------------------------------

CHECKS = {
    "judgments": """
        SELECT count(*) FROM annotations_judgment j
        JOIN annotations_item i ON i.id = j.item_id WHERE i.study_id = %(study)s""",
    "items with more than k judgments": """
        SELECT count(*) FROM (
          SELECT i.id FROM annotations_item i
          JOIN annotations_study s ON s.id = i.study_id
          JOIN annotations_judgment j ON j.item_id = i.id
          WHERE i.study_id = %(study)s AND NOT i.is_gold
          GROUP BY i.id, s.overlap, i.extra_votes
          HAVING count(*) > s.overlap + i.extra_votes) t""",
    "items with more than k judgments + live leases": """
        SELECT count(*) FROM (
          SELECT i.id FROM annotations_item i
          JOIN annotations_study s ON s.id = i.study_id
          JOIN annotations_assignment a ON a.item_id = i.id
          WHERE i.study_id = %(study)s AND NOT i.is_gold
            AND (a.state = 'judged' OR (a.state = 'leased' AND a.leased_until > now()))
          GROUP BY i.id, s.overlap, i.extra_votes
          HAVING count(*) > s.overlap + i.extra_votes) t""",
    "max judgments on one item (k plus adaptive extra votes)": """
        SELECT coalesce(max(n), 0) FROM (
          SELECT count(*) AS n FROM annotations_judgment j
          JOIN annotations_item i ON i.id = j.item_id
          WHERE i.study_id = %(study)s GROUP BY j.item_id) t""",
    "(item, rater) pairs judged more than once": """
        SELECT count(*) FROM (
          SELECT j.item_id, j.rater_id FROM annotations_judgment j
          JOIN annotations_item i ON i.id = j.item_id WHERE i.study_id = %(study)s
          GROUP BY j.item_id, j.rater_id HAVING count(*) > 1) t""",
    "(item, rater) pairs with more than one assignment": """
        SELECT count(*) FROM (
          SELECT a.item_id, a.rater_id FROM annotations_assignment a
          JOIN annotations_item i ON i.id = a.item_id WHERE i.study_id = %(study)s
          GROUP BY a.item_id, a.rater_id HAVING count(*) > 1) t""",
    "judged assignments without exactly one judgment": """
        SELECT count(*) FROM annotations_assignment a
        JOIN annotations_item i ON i.id = a.item_id
        WHERE i.study_id = %(study)s AND a.state = 'judged'
          AND (SELECT count(*) FROM annotations_judgment j WHERE j.assignment_id = a.id) <> 1""",
    "judgments whose assignment is not judged": """
        SELECT count(*) FROM annotations_judgment j
        JOIN annotations_assignment a ON a.id = j.assignment_id
        JOIN annotations_item i ON i.id = j.item_id
        WHERE i.study_id = %(study)s AND a.state <> 'judged'""",
    "live leases": """
        SELECT count(*) FROM annotations_assignment a
        JOIN annotations_item i ON i.id = a.item_id
        WHERE i.study_id = %(study)s AND a.state = 'leased' AND a.leased_until > now()""",
}
MUST_BE_ZERO = {
    "items with more than k judgments",
    "items with more than k judgments + live leases",
    "(item, rater) pairs judged more than once",
    "(item, rater) pairs with more than one assignment",
    "judged assignments without exactly one judgment",
    "judgments whose assignment is not judged",
}


def verify(url: str, study_id: int) -> tuple[bool, list[str]]:
    import psycopg

    ok = True
    lines = []
    with psycopg.connect(url) as conn:
        for name, sql in CHECKS.items():
            value = conn.execute(sql, {"study": study_id}).fetchone()[0]
            bad = name in MUST_BE_ZERO and value != 0
            ok = ok and not bad
            lines.append(f"    {name:56s} {value:>7}{'   <-- VIOLATION' if bad else ''}")
    return ok, lines


# --- phases ---------------------------------------------------------------------------------


async def run_floor(port: int, tokens: list[str], path: str, seconds: float, meter=None):
    conns = [HttpConnection(port, t) for t in tokens]
    latencies: list[float] = []
    statuses: Counter = Counter()
    for conn in conns:  # open every connection first, outside the timed window
        await conn.request("GET", path)
    started = time.perf_counter()
    if meter is not None:
        meter.start()
    await asyncio.gather(*(hammer(c, path, started + seconds, latencies, statuses) for c in conns))
    if meter is not None:
        meter.stop()
    elapsed = time.perf_counter() - started
    for conn in conns:
        await conn.close()
    return len(latencies) / elapsed, latencies, statuses, elapsed


async def run_loop(port: int, tokens: list[str], seconds: float, pace: float | None, meter):
    conns = [HttpConnection(port, t) for t in tokens]
    for conn in conns:
        await conn.request("GET", "/api/v1/me/studies/")
    stats = Stats()
    started = time.perf_counter()
    stop = started + seconds
    if meter is not None:
        meter.start()
    await asyncio.gather(
        *(rater(c, stats, start=started, stop=stop, pace=pace) for c in conns),
    )
    if meter is not None:
        meter.stop()
    elapsed = time.perf_counter() - started
    for conn in conns:
        await conn.close()
    in_window = sum(1 for t in stats.judged_at if t <= stop)
    return stats, elapsed, in_window / seconds


def status_text(counter: Counter) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counter.items(), key=str))


def cpu_meter(process: subprocess.Popen, database: str) -> common.CpuMeter:
    workers = common.children_of(process.pid)
    return common.CpuMeter(
        {
            "client": None,
            f"gunicorn({len(workers)}w)": [process.pid, *workers],
            "postgres(backends)": lambda: common.postgres_backends(database),
        }
    )


def run_config(config: ServerConfig, args, url: str, seeded: dict, floors: dict) -> dict:
    log = Path(args.log_dir) / f"gunicorn-{config.name}.log"
    tokens = seeded["tokens"]
    process, port, command = start_gunicorn(config, url, tokens[0], log, args.gunicorn_arg)
    result: dict = {"config": config.name}
    try:
        print(f"\n=== gunicorn {config.name}: gunicorn {command}")
        # Warm every worker thread's database connection and imports.
        asyncio.run(run_floor(port, tokens, "/api/v1/me/studies/", args.warm_seconds))
        floor_paths = (
            ("floor_bare", "/api/v1/me/", "bare DRF endpoint: token auth, 200, no other query"),
            ("floor_me", "/api/v1/me/studies/", "200, token auth + role check + 1 aggregate query"),
        )
        for key, path, what in floor_paths:
            meter = cpu_meter(process, args.db)
            rps, lat, statuses, elapsed = asyncio.run(
                run_floor(port, tokens, path, args.floor_seconds, meter)
            )
            result[key] = rps
            print(
                f"  floor  GET {path} ({what}), saturated, {len(tokens)} clients: {rps:7.1f} req/s"
            )
            print(f"    {common.latency_summary(lat)}  [{status_text(statuses)}]")
            print(f"    {meter.report(elapsed, len(lat), 'request')}")

        meter = cpu_meter(process, args.db)
        stats, elapsed, _ = asyncio.run(run_loop(port, tokens, args.paced_seconds, 1.0, meter))
        nxt = stats.latencies["next"]
        sub = stats.latencies["submit"]
        result["paced_p95_next"] = common.percentile(nxt, 95) * 1000
        result["paced_p95_submit"] = common.percentile(sub, 95) * 1000
        print(
            f"  paced  {len(tokens)} raters x 1 next+submit/s for {elapsed:.1f} s: "
            f"{len(stats.judged_at)} judgments"
        )
        print(f"    next   {common.latency_summary(nxt)}  [{status_text(stats.statuses['next'])}]")
        print(
            f"    submit {common.latency_summary(sub)}  [{status_text(stats.statuses['submit'])}]"
        )
        if stats.errors:
            print(f"    client errors: {status_text(stats.errors)}")
        print(f"    {meter.report(elapsed, len(stats.judged_at), 'judgment')}")

        meter = cpu_meter(process, args.db)
        stats, elapsed, jps = asyncio.run(
            run_loop(port, tokens, args.saturated_seconds, None, meter)
        )
        result["judgments_per_s"] = jps
        nxt = stats.latencies["next"]
        sub = stats.latencies["submit"]
        print(
            f"  saturated  {len(tokens)} raters, no pause, {args.saturated_seconds:.0f} s: "
            f"{jps:7.1f} judgments/s ({len(stats.judged_at)} judgments"
            + (f", queue exhausted for {stats.exhausted} raters" if stats.exhausted else "")
            + ")"
        )
        print(f"    next   {common.latency_summary(nxt)}  [{status_text(stats.statuses['next'])}]")
        print(
            f"    submit {common.latency_summary(sub)}  [{status_text(stats.statuses['submit'])}]"
        )
        if stats.errors:
            print(f"    client errors: {status_text(stats.errors)}")
        print(f"    {meter.report(elapsed, len(stats.judged_at), 'judgment')}")
        print(
            f"    ratios: judgments/s vs bare DRF floor req/s = "
            f"{jps / result['floor_bare']:.3f} (a judgment is 2 requests: "
            f"{2 * jps / result['floor_bare']:.2f} of the floor's request rate); "
            f"vs bare PG UPDATE ops/s (1 conn) = {jps / floors['pg_update']:.3f}"
        )
        ok, lines = verify(url, seeded["study_id"])
        result["verified"] = ok
        print(f"  over-assignment check (SQL, study {SLUG}, k={args.overlap}):")
        print("\n".join(lines))
        print(f"  => {'OK: no over-assignment, no double judgment' if ok else 'FAILED'}")
    finally:
        stop_gunicorn(process)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default=common.DEFAULT_PG, help="PostgreSQL server URL")
    parser.add_argument("--db", default="bench_eval", help="database name (must start bench_)")
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--raters", type=int, default=50)
    parser.add_argument("--configs", default="gthread-4x4,gthread-2x8,gthread-3x6,sync-8")
    parser.add_argument("--paced-seconds", type=float, default=25.0)
    parser.add_argument("--saturated-seconds", type=float, default=25.0)
    parser.add_argument("--floor-seconds", type=float, default=6.0)
    parser.add_argument("--warm-seconds", type=float, default=2.0, help=argparse.SUPPRESS)
    parser.add_argument("--pg-floor-seconds", type=float, default=3.0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--gunicorn-arg", action="append", default=[], help="extra gunicorn argument (repeat)"
    )
    parser.add_argument("--log-dir", default=tempfile.gettempdir())
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument(
        "--migrate-only",
        action="append",
        default=[],
        metavar="APP",
        help="migrate only these apps (repeat; default: all)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="200 items, 4 raters, one small server, short phases, on <db>_smoke (dropped)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.items, args.overlap, args.raters, args.configs = 200, 2, 4, "gthread-1x2"
        args.paced_seconds, args.saturated_seconds, args.floor_seconds = 2.0, 2.0, 1.0
        args.warm_seconds, args.pg_floor_seconds, args.keep = 0.5, 0.5, False
        args.db = common.smoke_name(args.db)
        common.drop_at_exit(args.pg, args.db, f"{args.db}_tpl")
    configs = [ServerConfig.parse(c) for c in args.configs.split(",") if c]

    template = f"{args.db}_tpl"
    common.check_bench_name(args.db)
    url = common.database_url(args.pg, args.db)
    print(f"reproduce: {common.reproduce_line()}")
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    common.database_recreate(args.pg, args.db)
    started = time.perf_counter()
    common.migrate(url, args.migrate_only)
    print(f"migrated fresh database {args.db} in {time.perf_counter() - started:.1f} s")
    common.django_setup(url)
    from django import db as django_db

    seeded = seed(items=args.items, overlap=args.overlap, raters=args.raters)
    print(
        f"seeded study {SLUG}: {args.items} items, overlap {args.overlap}, {args.raters} raters "
        f"with tokens (+1 probe) in {seeded['seed_seconds']:.1f} s"
    )
    print("queries per request (probe rater, DRF test client + token auth):")
    print("\n".join(probe_queries(seeded["probe_token"])))
    django_db.connections.close_all()
    # The seeded state, probe judgments included, is the starting point of every config.
    common.database_recreate(args.pg, template, template=args.db)

    ops, lat = pg_update_floor(url, args.pg_floor_seconds)
    floors = {"pg_update": ops}
    print(
        "floor: bare PostgreSQL single-row UPDATE round trip (psycopg, autocommit, 1 connection)"
        f": {ops:8.1f} ops/s"
    )
    print(f"       {common.latency_summary(lat)}")

    results = []
    try:
        for index, config in enumerate(configs):
            if index:
                common.database_recreate(args.pg, args.db, template=template)
            results.append(run_config(config, args, url, seeded, floors))
    finally:
        if not args.keep:
            common.database_drop(args.pg, template)
            common.database_drop(args.pg, args.db)

    print("\n=== summary (same run, same machine)")
    print(
        f"  {'config':14s} {'judgments/s':>11s} {'me/studies req/s':>16s} {'bare 200 req/s':>15s}"
        f" {'paced p95 next':>14s} {'paced p95 submit':>16s}  checks"
    )
    for r in results:
        print(
            f"  {r['config']:14s} {r['judgments_per_s']:11.1f} {r['floor_me']:16.1f} "
            f"{r['floor_bare']:15.1f} {r['paced_p95_next']:11.2f} ms {r['paced_p95_submit']:13.2f}"
            f" ms  {'OK' if r['verified'] else 'FAILED'}"
        )
    best = max(results, key=lambda r: r["judgments_per_s"])
    print(
        f"  best: {best['config']} at {best['judgments_per_s']:.1f} judgments/s = "
        f"{best['judgments_per_s'] / floors['pg_update']:.3f} x the bare PG UPDATE rate "
        f"({floors['pg_update']:.0f} ops/s); targets: >= 150 judgments/s "
        f"{'MET' if best['judgments_per_s'] >= 150 else 'MISSED'}, paced p95 < 25 ms "
        + ("MET" if max(best["paced_p95_next"], best["paced_p95_submit"]) < 25 else "MISSED")
    )
    if not all(r["verified"] for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
