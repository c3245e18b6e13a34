"""Profile of the rater loop in one process: where the CPU of next + submit goes.

Seeds a fresh PostgreSQL database (``bench_profile``) the way ``bench_rater_loop.py`` does,
then runs next + submit cycles through Django's WSGI handler (the same middleware, DRF and view
stack gunicorn runs, without sockets), round-robin over the raters, and prints the time per
cycle, the SQL queries per request and a cProfile of the hot functions. Use it to find what to
cut before running the HTTP benchmark:

    .venv/bin/python bench/profile_rater_loop.py [--cycles 400] [--sort tottime]

The peer, measured in the same process after the cycles: the bare DRF endpoint
``GET /api/v1/me/`` (token auth, a 200, no other query) through the same WSGI handler, so the
ratio says how many framework floors one judgment costs. ``--smoke`` (100 items, 3 raters, 20
cycles, database ``<db>_smoke``, always dropped) is what the test suite runs.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def wsgi_call(app, method: str, path: str, token: str, body: bytes = b"") -> tuple[int, bytes]:
    path, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_AUTHORIZATION": f"Token {token}",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
    }
    if body:
        environ["CONTENT_TYPE"] = "application/json"
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured["status"] = int(status.split()[0])

    chunks = app(environ, start_response)
    payload = b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    return captured["status"], payload


def cycles(app, tokens: list[str], slug: str, n: int) -> int:
    judged = 0
    for i in range(n):
        token = tokens[i % len(tokens)]
        status, payload = wsgi_call(app, "GET", f"/api/v1/queue/next/?study={slug}", token)
        if status != 200:
            raise SystemExit(f"next answered {status}: {payload[:300]!r}")
        assignment = json.loads(payload)["assignment"]
        status, payload = wsgi_call(
            app, "POST", f"/api/v1/assignments/{assignment}/judgment/", token, b'{"choice": "1"}'
        )
        if status != 201:
            raise SystemExit(f"submit answered {status}: {payload[:300]!r}")
        judged += 1
    return judged


def floor_requests(app, tokens: list[str], n: int) -> None:
    for i in range(n):
        status, payload = wsgi_call(app, "GET", "/api/v1/me/", tokens[i % len(tokens)])
        if status != 200:
            raise SystemExit(f"/api/v1/me/ answered {status}: {payload[:300]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default=common.DEFAULT_PG)
    parser.add_argument("--db", default="bench_profile")
    parser.add_argument("--items", type=int, default=3_000)
    parser.add_argument("--raters", type=int, default=20)
    parser.add_argument("--cycles", type=int, default=400)
    parser.add_argument("--sort", default="tottime", choices=["tottime", "cumulative"])
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--smoke", action="store_true", help="100 items, 3 raters, 20 cycles, on <db>_smoke"
    )
    args = parser.parse_args()
    if args.smoke:
        args.items, args.raters, args.cycles, args.top, args.keep = 100, 3, 20, 10, False
        args.db = common.smoke_name(args.db)
        common.drop_at_exit(args.pg, args.db)
    common.check_bench_name(args.db)

    from bench_rater_loop import SLUG, seed

    url = common.database_url(args.pg, args.db)
    common.database_recreate(args.pg, args.db)
    common.migrate(url)
    common.django_setup(url)
    from django.core.wsgi import get_wsgi_application
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    seeded = seed(items=args.items, overlap=3, raters=args.raters)
    tokens = seeded["tokens"]
    app = get_wsgi_application()
    try:
        cycles(app, tokens, SLUG, 2 * len(tokens))  # warm-up: connections, caches, imports
        with CaptureQueriesContext(connection) as ctx:
            cycles(app, tokens, SLUG, 20)
        per_cycle = len(ctx.captured_queries) // 20
        print(f"queries for one next + submit: {per_cycle}")
        if os.environ.get("BENCH_SHOW_QUERIES"):
            # Mean round-trip time of each statement of a cycle, over the 20 cycles.
            for i in range(per_cycle):
                ms = [float(q["time"]) * 1000 for q in ctx.captured_queries[i::per_cycle]]
                print(f"   {sum(ms) / len(ms):6.2f} ms  {ctx.captured_queries[i]['sql'][:160]}")
        cpu0, wall0 = time.process_time(), time.perf_counter()
        cycles(app, tokens, SLUG, args.cycles)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        print(
            f"{args.cycles} cycles: {1000 * wall / args.cycles:.2f} ms wall, "
            f"{1000 * cpu / args.cycles:.2f} ms CPU of this process per judgment (next + submit)"
        )
        floor_requests(app, tokens, len(tokens))  # warm-up
        floor_cpu0, floor_wall0 = time.process_time(), time.perf_counter()
        floor_requests(app, tokens, args.cycles)
        floor_cpu = time.process_time() - floor_cpu0
        floor_wall = time.perf_counter() - floor_wall0
        print(
            f"peer: {args.cycles} x GET /api/v1/me/ (bare DRF endpoint): "
            f"{1000 * floor_wall / args.cycles:.2f} ms wall, "
            f"{1000 * floor_cpu / args.cycles:.2f} ms CPU per request"
        )
        print(
            f"ratio judgment (next + submit) / bare DRF request: CPU {cpu / floor_cpu:.1f}x, "
            f"wall {wall / floor_wall:.1f}x"
        )
        profiler = cProfile.Profile()
        profiler.enable()
        cycles(app, tokens, SLUG, args.cycles)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top)
        print(out.getvalue())
    finally:
        from django import db

        db.connections.close_all()
        if not args.keep:
            common.database_drop(args.pg, args.db)


if __name__ == "__main__":
    main()
