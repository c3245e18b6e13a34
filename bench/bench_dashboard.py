"""Benchmark: the live study dashboard of a study with 100,000 items and 1,000,000 judgments.

What it does, in one run:

1. Makes sure PostgreSQL database ``bench_dashboard`` (only ``bench_*`` names are accepted)
   holds the benchmark study, else drops it, migrates it fresh and bulk-loads it with COPY
   through ``bench/bench_report.py``'s loader (same generator: 100,000 items, 1% gold, x 10
   raters who each judge every item = 1,000,000 judgments over 30 days, one careless fast
   rater), under this benchmark's own slug. The study is then made a live one: collecting,
   k = 12 (so 2 votes per item are still wanted), 4 more assigned raters who have not started.
   Before measuring, the judgments' times are shifted so the newest is a minute old: the
   dashboard's last 48 hours and its estimate see a study in full swing.

2. In this process (Django against that database, production settings, a researcher signed
   in through the test client), each GET through the whole Django stack (middleware, view,
   selectors, plots, template), ``--repeats`` times:

   * ``/studies/SLUG/dashboard/`` (the page) and ``.../dashboard/fragment/`` (what it polls);
   * ``/api/v1/studies/SLUG/dashboard/`` (the same figures as JSON);
   * peers measured in the same run: the study page ``/studies/SLUG/`` (progress and why items
     wait) and a bare ``SELECT count(*)`` of the study's judgments over the same connection.

   Then a breakdown (the selector's queries one by one, the plots) and a check that the
   dashboard's totals equal plain SQL counts. Target: the page in < 1 s (median).

Usage: ``.venv/bin/python bench/bench_dashboard.py [--reload] [--repeats 7]``.
``--smoke`` (300 items x 5 raters, 2 repeats, on ``<db>_smoke``, loaded fresh and dropped)
runs every path; the test suite runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_report  # noqa: E402  (its loader and generator)
import common  # noqa: E402

SLUG = "bench-dashboard-1m"
RESEARCHER = "bench-researcher"
OVERLAP = 12
EXTRA_RATERS = 4
TARGET_S = 1.0


# --- data -----------------------------------------------------------------------------------


def child_load(args) -> dict:
    """bench_report's COPY loader under this benchmark's slug, then the study made live."""
    from datetime import UTC, datetime, timedelta

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import transaction

    from annotations import roles
    from annotations.models import Study, StudyRater

    bench_report.SLUG = SLUG
    # Judgments spread over the 30 days before now (shifted again before each measurement).
    bench_report.EPOCH = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S")
    info = bench_report.load(
        items=args.items, raters=args.raters, gold_share=args.gold_share, seed=args.seed
    )
    user_model = get_user_model()
    with transaction.atomic():
        study = Study.objects.get(slug=SLUG)
        Study.objects.filter(pk=study.pk).update(
            status="open", overlap=OVERLAP, max_overlap=OVERLAP, name="Dashboard benchmark"
        )
        for r in range(EXTRA_RATERS):
            user = user_model.objects.create(username=f"bench-new-rater-{r:02d}", password="!")
            StudyRater.objects.create(
                study=study, rater=user, order_multiplier=2 * r + 1, order_offset=r
            )
        researcher = user_model.objects.create(username=RESEARCHER, password="!")
        researcher.groups.add(Group.objects.get(name=roles.RESEARCHER))
        Study.objects.filter(pk=study.pk).update(created_by=researcher)
    return info


def run_child(args, mode: str, url: str) -> dict:
    return common.run_child(Path(__file__).resolve(), mode, url, bench_report.study_shape(args))


def shift_to_now(url: str) -> float:
    """Moves the study's judgments so the newest is a minute old; returns the shift in hours
    (0 when it already is within ten minutes)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        study_id = conn.execute(
            "SELECT id FROM annotations_study WHERE slug = %s", (SLUG,)
        ).fetchone()[0]
        lag = conn.execute(
            "SELECT now() - interval '1 minute' - max(j.created_at) FROM annotations_judgment j "
            "JOIN annotations_item i ON i.id = j.item_id WHERE i.study_id = %s",
            (study_id,),
        ).fetchone()[0]
        if lag.total_seconds() < 600:
            return 0.0
        conn.execute(
            "UPDATE annotations_judgment SET created_at = created_at + %s "
            "WHERE item_id IN (SELECT id FROM annotations_item WHERE study_id = %s)",
            (lag, study_id),
        )
        conn.execute("VACUUM (ANALYZE) annotations_judgment")
        return lag.total_seconds() / 3600


# --- measurement ----------------------------------------------------------------------------


def timed(function, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    return (
        f"median {statistics.median(ms):7.1f} ms  (min {ms[0]:7.1f}, max {ms[-1]:7.1f}, "
        f"n={len(ms)})"
    )


def measure(args) -> None:
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client

    from annotations import dashboard, dashboard_plots
    from annotations.models import Judgment, Study

    study = Study.objects.get(slug=SLUG)
    client = Client()
    client.force_login(study.created_by)
    page_url = f"/studies/{SLUG}/dashboard/"
    urls = {
        "dashboard page": page_url,
        "dashboard fragment (polled)": f"/studies/{SLUG}/dashboard/fragment/",
        "dashboard API (JSON)": f"/api/v1/studies/{SLUG}/dashboard/",
        "peer: study page": f"/studies/{SLUG}/",
    }
    # CPU of this process and of the database's backends (parallel workers not counted).
    meter_groups = {"django": None, "postgres": lambda: common.postgres_backends(args.db)}

    def get(url: str):
        def call():
            response = client.get(url)
            if response.status_code != 200:
                raise SystemExit(f"GET {url} answered {response.status_code}")
            return response

        return call

    def bare_count() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM annotations_judgment j JOIN annotations_item i "
                "ON i.id = j.item_id WHERE i.study_id = %s",
                [study.pk],
            )
            return cursor.fetchone()[0]

    def run(call, repeats: int) -> tuple[list[float], float]:
        """Wall times, and CPU seconds (this process + PostgreSQL) per call."""
        meter = common.CpuMeter(meter_groups)
        meter.start()
        times = timed(call, repeats)
        meter.stop()
        used = meter.used()
        return times, (used["django"] + used["postgres"]) / repeats

    def line(name: str, times: list[float], cpu: float) -> None:
        print(f"  {name:30s} {summary(times)}  CPU {cpu * 1000:7.0f} ms")

    for url in urls.values():  # warm-up: imports, the connection, templates, the snapshot
        get(url)()

    print(
        f"\n=== computing the figures: a first view, or each background refresh "
        f"({args.compute_repeats} times, the snapshot dropped before each)"
    )

    def first_view():
        cache.delete(dashboard.snapshot_key(study))
        get(page_url)()

    compute_times, compute_cpu = run(first_view, args.compute_repeats)
    line("dashboard page, no snapshot", compute_times, compute_cpu)

    read = dashboard.study_dashboard_read(study=study)
    mode = (
        f"served from its snapshot (computed in {read.board.compute_seconds:.2f} s, "
        f"refreshed in the background once {read.max_age_seconds:.0f} s old)"
        if read.from_snapshot
        else "computed for every request (cheaper than "
        f"{dashboard.LIVE_COMPUTE_SECONDS} s: {read.board.compute_seconds * 1000:.0f} ms)"
    )
    print(f"\n=== GET through the Django stack, {args.repeats} times each; the dashboard {mode}")
    results, cpu = {}, {}
    for name, url in urls.items():
        results[name], cpu[name] = run(get(url), args.repeats)
    name = "peer: bare SELECT count(*)"
    results[name], cpu[name] = run(bare_count, args.repeats)
    for name, times in results.items():
        line(name, times, cpu[name])
    page = statistics.median(results["dashboard page"])
    study_page = statistics.median(results["peer: study page"])
    count = statistics.median(results["peer: bare SELECT count(*)"])
    compute = statistics.median(compute_times)
    print(
        f"ratio dashboard/study page: {page / study_page:.3f}x; "
        f"ratio dashboard/bare count(*): {page / count:.2f}x; "
        f"computing the figures/bare count(*): {compute / count:.1f}x"
    )
    verdict = "MET" if page < TARGET_S else "MISSED"
    print(f"target: dashboard page < {TARGET_S:.0f} s (median): {page * 1000:.0f} ms {verdict}")

    # Where computing goes: the selector's parts, then the plots.
    from django.utils import timezone

    now = timezone.now()
    parts = {
        "judgments by rater and bucket": lambda: dashboard._judgment_buckets(study, now),
        "items: votes, no majority": lambda: dashboard._item_totals(study),
        "study_blockers": lambda: dashboard.selectors.study_blockers(study=study),
        "whole computation": lambda: dashboard.study_dashboard(study=study),
    }
    print(f"\n=== breakdown of computing ({args.compute_repeats} times each)")
    for name, call in parts.items():
        line(name, *run(call, args.compute_repeats))
    board = dashboard.study_dashboard(study=study)
    active = tuple((r.rater, r.hourly) for r in board.raters if any(r.hourly))
    plots = {
        "plot: per hour": lambda: dashboard_plots.hourly_svg(board.hourly),
        "plot: per day": lambda: dashboard_plots.daily_svg(board.daily),
        "plot: raters x hours": lambda: dashboard_plots.rater_grid_svg(board.hour_starts, active),
    }
    for name, call in plots.items():
        line(name, *run(call, args.repeats))

    counted = Judgment.objects.filter(
        item__study=study, item__is_gold=False, item__excluded=False
    ).count()
    same = board.judgments == bare_count() and board.votes_done == counted
    print(
        f"\nfigures: {board.judgments:,} judgments, {board.votes_done:,} of "
        f"{board.votes_wanted:,} votes, {len(board.raters)} raters "
        f"({sum(1 for r in board.raters if r.flags)} flagged), "
        f"{board.waiting.rateable:,} items rateable; estimate: {board.estimate.message}"
    )
    print(f"figures agree with plain SQL counts: {same}")
    cache.delete(dashboard.snapshot_key(study))  # a shared cache keeps nothing of the bench's
    if not same:
        raise SystemExit("FAIL: the dashboard's totals differ from plain SQL counts")


# --- driver ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default=common.DEFAULT_PG, help="PostgreSQL server URL")
    parser.add_argument("--db", default="bench_dashboard", help="database (must start bench_)")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--raters", type=int, default=10)
    parser.add_argument("--gold-share", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=20_251_125)
    parser.add_argument("--repeats", type=int, default=7, help="GETs of each page")
    parser.add_argument(
        "--compute-repeats", type=int, default=3, help="computations from scratch (seconds each)"
    )
    parser.add_argument("--reload", action="store_true", help="drop and reload the database")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="300 items x 5 raters, 2 repeats, on <db>_smoke (loaded fresh, dropped)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke and not args.child:
        args.items, args.raters, args.repeats, args.reload = 300, 5, 2, True
        args.compute_repeats = 1
        args.db = common.smoke_name(args.db)
        common.drop_at_exit(args.pg, args.db)

    if args.child == "load":
        common.django_setup(args.url)
        print("RESULT " + json.dumps(child_load(args)))
        return

    common.check_bench_name(args.db)
    url = common.database_url(args.pg, args.db)
    bench_report.SLUG = SLUG
    wanted = bench_report.shape(args.items, args.raters, args.gold_share, args.seed)
    print(f"reproduce: {common.reproduce_line()}")
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
        f"python {sys.version.split()[0]}; database {args.db}"
    )
    loaded = (
        not args.reload
        and bench_report.database_exists(args.pg, args.db)
        and bench_report.study_is_loaded(url, wanted)
    )
    if loaded:
        bench_report.migrate(url)  # no-op unless a migration was added since the load
        print(f"data: study {SLUG} already loaded ({wanted}); --reload to rebuild")
    else:
        common.database_recreate(args.pg, args.db)
        bench_report.migrate(url)
        info = run_child(args, "load", url)
        print(
            f"loaded study {SLUG} with COPY in {info['copy_s']:.1f} s "
            f"(+ {info['generate_s']:.1f} s generation, {info['vacuum_s']:.1f} s VACUUM); rows: "
            + ", ".join(f"{t} {n:,}" for t, n in info["counts"].items())
        )
    shifted = shift_to_now(url)
    print(
        f"shape: {args.items:,} items ({args.gold_share:.0%} gold) x {args.raters} raters = "
        f"{args.items * args.raters:,} judgments over 30 days, k = {OVERLAP}, "
        f"{EXTRA_RATERS} more raters assigned; times shifted by {shifted:.1f} h to end now"
    )
    common.django_setup(url)
    from django.conf import settings
    from django.test.utils import override_settings

    # Production settings, except static URLs without collectstatic's manifest (a dict look-up
    # in production): the benchmark must not need a collectstatic run.
    plain_static = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=plain_static), warnings.catch_warnings():
        # WhiteNoise warns that there is no collected static folder; nothing here reads it.
        warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
        measure(args)


if __name__ == "__main__":
    main()
