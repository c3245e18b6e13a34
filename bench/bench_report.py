"""Benchmark: the research report and the streaming judgments export on a 1M-judgment study.

What it does, in one run:

1. Makes sure PostgreSQL database ``bench_report`` (only ``bench_*`` names are accepted) holds
   the benchmark study, else drops it, migrates it fresh and bulk-loads it with COPY (psycopg 3):
   100,000 items (1% gold) x 10 raters = 1,000,000 judgments (every rater votes on every item),
   200,000 outputs (UUID ids, realistic lengths), 1,000,000 judged assignments, 200,000
   item-level metric scores (one metric, base and tuned) and 100,000 LLM-judge verdicts
   (foreign-key triggers off during the COPY, every reference checked in bulk afterwards). A
   later run finds the study (same shape and seed) and skips the load; ``--reload`` forces it.

   Votes come from a seeded numpy generator: each item has a latent quality difference
   ``d ~ N(0.27, 1)`` (tuned minus base); each vote is ``d + rater bias + rater noise``
   (one careless rater with large noise and short times, one rater leaning to the left slot),
   a tie (15% of those both-bad) inside +-0.3, else the sign picks tuned or base. That gives a
   tuned win rate of ~0.61 (ties as half) and a Krippendorff alpha of ~0.32. Times are
   log-normal per rater (median 15-40 s); the judge and the metric follow ``d`` with noise.

2. In a fresh subprocess per measurement (so one measurement never inflates the next one's peak
   RSS): ``scoring.reports.build_report(study, ReportOptions(n_resamples=1000))`` wall time,
   the CPU time of the Python process and of its PostgreSQL backend (on a shared machine the
   CPU times are the steadier figures), a per-section breakdown (wall and the thread's CPU;
   the reads that `scoring.reports.Prefetch` runs on a second connection are listed too),
   the process's peak RSS and its peak during each top-level section (the kernel's peak is
   reset between sections, ``/proc/self/clear_refs``); then again under ``tracemalloc`` for
   the peak of Python allocations (numpy buffers included) per section. The
   report's sha256 (``report_sha256``) is printed, so optimisations can be checked to change
   nothing. ``--profile`` adds cProfile runs of the report and of the export.

3. The judgments CSV export, each in a fresh process: ``write_export(kind=judgments_csv)`` to a
   temp file; ``manage.py export_judgments SLUG --format csv --out PATH --skip-checks`` (peak
   RSS from ``wait4``); and the peer, a bare psycopg ``COPY (SELECT same columns) TO STDOUT``
   into a file, formatted on the server like the export. Rows/s, peak RSS (target < 300 MiB),
   the ratio to the peer, and whether the three files hold the same rows.

Usage: ``.venv/bin/python bench/bench_report.py [--reload] [--profile] [--items 100000]``.
``--smoke`` (300 items x 5 raters, 50 resamples, with ``--profile``, on database
``<db>_smoke``, loaded fresh and dropped afterwards) runs every child and fails if the three
export files differ; the test suite runs it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SLUG = "bench-report-1m"
JUDGE_ID = "bench-judge:gpt-x@pairwise_v1"
METRIC = "rouge_l"
EPOCH = "2025-06-01T00:00:00"
RSS_TARGET_MIB = 300
PROSE = (
    "the answer explains each step with care and cites the relevant facts then weighs the trade "
    "offs of every option before it closes with a short summary that a reader can act on quickly "
    "while noting caveats limits and open questions"
)
WORDS = PROSE.split(" ")
# Section functions of scoring.reports timed one by one in the report child (missing ones are
# skipped, so the breakdown survives refactoring).
SECTIONS = (
    "fetch_votes",
    "rater_rows",
    "keep_raters",
    "human_majorities",
    "win_rate_section",
    "item_bootstraps",
    "judge_section",
    "metric_sections",
    "length_adjusted_section",
    "agreement_section",
    "disagreement_section",
    "decision_section",
    # Reads that scoring.reports.Prefetch runs on a second connection, overlapping the above.
    "judge_reads",
    "metric_scores",
    "output_lengths",
)


def mib(kib: float) -> float:
    return kib / 1024


def current_rss_mib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> bool:
    """Resets this process's peak RSS (VmHWM, which ru_maxrss reads) to its current RSS, so a
    section's own peak can be read (Linux `clear_refs` 5); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# --- data generation ------------------------------------------------------------------------


def generate(items: int, raters: int, gold_share: float, seed: int):
    """Every table's rows as numpy arrays / lists (ids relative to 1)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n_votes = items * raters
    d = rng.normal(0.27, 1.0, items)  # latent tuned-minus-base quality per item
    is_gold = np.zeros(items, dtype=bool)
    is_gold[rng.choice(items, int(round(items * gold_share)), replace=False)] = True
    # Gold items get a clear answer, so their latent difference is pushed away from zero.
    d[is_gold] = np.sign(d[is_gold]) * (1.5 + np.abs(d[is_gold]))

    bias = rng.normal(0.0, 0.15, raters)
    noise = rng.uniform(0.5, 0.9, raters)
    left_lean = np.zeros(raters)
    median_s = rng.uniform(15, 40, raters)
    if raters >= 3:
        noise[raters - 1] = 2.5  # careless: noisy and fast
        median_s[raters - 1] = 4.0
        left_lean[raters - 2] = 0.25  # leans towards the left slot

    item_of = np.repeat(np.arange(items), raters)
    rater_of = np.tile(np.arange(raters), items)
    left_tuned = rng.random(n_votes) < 0.5
    z = (
        d[item_of]
        + bias[rater_of]
        + noise[rater_of] * rng.standard_normal(n_votes)
        + np.where(left_tuned, 1.0, -1.0) * left_lean[rater_of]
    )
    # preferred codes: 0 base, 1 tuned, 2 tie, 3 both_bad
    preferred = np.where(z > 0.3, 1, np.where(z < -0.3, 0, 2))
    preferred[(preferred == 2) & (rng.random(n_votes) < 0.15)] = 3
    # choice codes: 0 left, 1 right, 2 tie, 3 both_bad
    chose_tuned_slot = np.where(left_tuned, 0, 1)
    choice = np.where(
        preferred == 1, chose_tuned_slot, np.where(preferred == 0, 1 - chose_tuned_slot, preferred)
    )
    time_ms = np.maximum(
        400, np.exp(np.log(median_s[rater_of] * 1000) + 0.6 * rng.standard_normal(n_votes))
    ).astype(np.int64)
    # Judgments arrive in time order, interleaved across items and raters.
    order = rng.permutation(n_votes)
    span_s = 30 * 86_400
    offsets_us = np.sort(rng.integers(0, span_s * 1_000_000, n_votes))
    has_rationale = rng.random(n_votes) < 0.1

    base_len = np.clip(np.exp(rng.normal(np.log(900), 0.5, items)), 80, 4_000).astype(np.int64)
    tuned_len = np.clip(
        base_len * np.exp(0.1 + 0.1 * d + rng.normal(0, 0.2, items)), 80, 5_000
    ).astype(np.int64)
    output_ids = [
        str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(2 * items)
    ]  # [2i] base, [2i + 1] tuned
    base_score = np.clip(rng.normal(0.35, 0.1, items), 0, 1)
    tuned_score = np.clip(base_score + 0.02 + 0.03 * d + rng.normal(0, 0.05, items), 0, 1)
    p_tuned = 1 / (1 + np.exp(-(1.6 * d + rng.normal(0, 0.8, items))))
    position_bias = rng.random(items) < 0.04
    gold_pref = np.where(d > 0, "tuned", "base")
    return {
        "d": d,
        "is_gold": is_gold,
        "gold_pref": gold_pref,
        "item_of": item_of[order],
        "rater_of": rater_of[order],
        "left_tuned": left_tuned[order],
        "preferred": preferred[order],
        "choice": choice[order],
        "time_ms": time_ms[order],
        "offsets_us": offsets_us,
        "has_rationale": has_rationale,
        "base_len": base_len,
        "tuned_len": tuned_len,
        "output_ids": output_ids,
        "base_score": base_score,
        "tuned_score": tuned_score,
        "p_tuned": p_tuned,
        "position_bias": position_bias,
    }


def timestamps(offsets_us) -> list[str]:
    import numpy as np

    stamps = np.datetime64(EPOCH, "us") + offsets_us.astype("timedelta64[us]")
    return [s + "+00" for s in np.datetime_as_string(stamps, unit="us").tolist()]


FOREIGN_KEYS = (
    ("annotations_item", "study_id", "annotations_study"),
    ("annotations_output", "item_id", "annotations_item"),
    ("annotations_studyrater", "rater_id", "auth_user"),
    ("annotations_assignment", "item_id", "annotations_item"),
    ("annotations_assignment", "rater_id", "auth_user"),
    ("annotations_judgment", "assignment_id", "annotations_assignment"),
    ("annotations_judgment", "item_id", "annotations_item"),
    ("annotations_judgment", "rater_id", "auth_user"),
    ("scoring_outputscore", "output_id", "annotations_output"),
    ("scoring_outputscore", "item_id", "annotations_item"),
    ("scoring_judgeverdict", "item_id", "annotations_item"),
)


def unlisted_defaults(table: str, columns: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    """The columns of `table`'s model that the bench does not list, with their model defaults
    as one COPY text suffix. Django sets defaults in Python, not in the database, so a field a
    migration adds would otherwise break the COPY (NOT NULL without a default)."""
    from django.apps import apps
    from django.db.models import NOT_PROVIDED

    model = next(m for m in apps.get_models() if m._meta.db_table == table)
    extra, values = [], []
    for field in model._meta.concrete_fields:
        if field.column in columns or field.primary_key or getattr(field, "generated", False):
            continue  # a generated column is the database's to fill
        if field.default is NOT_PROVIDED:
            if field.null:
                continue
            raise SystemExit(f"bench: {table}.{field.column} has no default; list it in the bench")
        value = field.get_default()
        if value is None:
            text = "\\N"
        elif isinstance(value, bool):
            text = "t" if value else "f"
        elif isinstance(value, dict | list):
            text = json.dumps(value)
        else:
            text = str(value)
        extra.append(field.column)
        values.append(text)
    return tuple(extra), "".join("\t" + v for v in values)


def copy_rows(cursor, table: str, columns: tuple[str, ...], lines, chunk: int = 50_000) -> int:
    """COPY tab-separated lines (no tabs, newlines or backslashes inside values) into table;
    columns the bench does not list get their model default."""
    count = 0
    extra, suffix = unlisted_defaults(table, columns)
    columns = columns + extra
    if suffix:
        lines = (line + suffix for line in lines)
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        buffer = []
        for line in lines:
            buffer.append(line)
            if len(buffer) >= chunk:
                copy.write(("\n".join(buffer) + "\n").encode())
                count += len(buffer)
                buffer.clear()
        if buffer:
            copy.write(("\n".join(buffer) + "\n").encode())
            count += len(buffer)
    return count


def text_of(i: int, system: str, n: int) -> str:
    """An output of exactly `n` characters (no tabs, newlines or backslashes)."""
    k = i * 7 + (3 if system == "tuned" else 0)
    head = f"{system.capitalize()} answer to question {i}:"
    words, size = [head], len(head)
    while size < n:
        word = WORDS[k % len(WORDS)]
        words.append(word)
        size += len(word) + 1
        k += 1
    return " ".join(words)[:n]


def load(*, items: int, raters: int, gold_share: float, seed: int) -> dict:
    """Creates the users and study with the ORM, then COPYs every large table through the
    configured Django connection; returns timings, row counts and the generated win rate."""
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from annotations.models import Study

    started = time.perf_counter()
    data = generate(items, raters, gold_share, seed)
    generated_s = time.perf_counter() - started
    n_votes = items * raters
    user_model = get_user_model()
    with transaction.atomic():
        users = user_model.objects.bulk_create(
            [user_model(username=f"bench-rater-{r:02d}", password="!") for r in range(raters)]
        )
        study = Study.objects.create(
            slug=SLUG,
            name="Report benchmark (1M judgments)",
            task_type="generation",
            overlap=raters,
            max_overlap=raters,
            status="closed",
            base_model="bench-base-7b",
            tuned_model="bench-tuned-7b",
            min_time_ms=5_000,
            settings={"bench": shape(items, raters, gold_share, seed)},
        )
    user_ids = np.array([u.pk for u in users])
    rng = np.random.default_rng(seed + 1)
    stamps = timestamps(data["offsets_us"])
    created = stamps[0]
    counts: dict[str, int] = {}
    codes = ("base", "tuned", "tie", "both_bad")
    choices = ("left", "right", "tie", "both_bad")
    rationales = (
        "Tuned is more complete and cites its sources.",
        "Base answers the question directly; tuned rambles.",
        "Both miss the point of the question, but the right one is shorter.",
        'Left one says "it depends" without saying on what.',
    )
    copy_started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as django_cursor:
        cursor = django_cursor.cursor  # the psycopg 3 cursor under Django's wrapper
        # Foreign-key triggers off for this transaction (superuser only): 5M deferred checks
        # would double the load time. The references are checked in bulk below instead.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("SELECT coalesce(max(id), 0) FROM annotations_item")
        item_base = cursor.fetchone()[0] + 1
        item_ids = item_base + np.arange(items)
        gold = data["is_gold"]
        counts["annotations_item"] = copy_rows(
            cursor,
            "annotations_item",
            (
                "id",
                "external_id",
                "prompt",
                "reference",
                "label",
                "task_type",
                "metadata",
                "priority",
                "extra_votes",
                "is_gold",
                "gold_preference",
                "created_at",
                "study_id",
                "excluded",
                "held",
                "hold_reason",
            ),
            (
                f"{item_ids[i]}\tq-{i:06d}\tQuestion {i}: explain topic {i % 977} in a few "
                f"paragraphs, with an example and the main caveats.\tReference answer {i}.\t\t"
                f"\t{{}}\t0\t0\t{'t' if gold[i] else 'f'}\t"
                f"{data['gold_pref'][i] if gold[i] else ''}\t{created}\t{study.pk}\tf\tf\t"
                for i in range(items)
            ),
        )
        out_ids = data["output_ids"]
        base_len, tuned_len = data["base_len"].tolist(), data["tuned_len"].tolist()
        counts["annotations_output"] = copy_rows(
            cursor,
            "annotations_output",
            ("id", "system", "model_name", "text", "item_id"),
            (
                f"{out_ids[2 * i + k]}\t{system}\tbench-{system}-7b\t"
                f"{text_of(i, system, (base_len, tuned_len)[k][i])}\t{item_ids[i]}"
                for i in range(items)
                for k, system in enumerate(("base", "tuned"))
            ),
        )
        counts["annotations_studyrater"] = copy_rows(
            cursor,
            "annotations_studyrater",
            ("order_multiplier", "order_offset", "added_at", "rater_id", "study_id"),
            (
                f"{2 * int(rng.integers(1, 10**9)) + 1}\t{int(rng.integers(0, 10**9))}\t"
                f"{created}\t{uid}\t{study.pk}"
                for uid in user_ids.tolist()
            ),
        )
        cursor.execute("SELECT coalesce(max(id), 0) FROM annotations_assignment")
        assignment_base = cursor.fetchone()[0] + 1
        cursor.execute("SELECT coalesce(max(id), 0) FROM annotations_judgment")
        judgment_base = cursor.fetchone()[0] + 1
        vote_item = (item_base + data["item_of"]).tolist()
        vote_rater = user_ids[data["rater_of"]].tolist()
        left = np.where(data["left_tuned"], "tuned", "base").tolist()
        counts["annotations_assignment"] = copy_rows(
            cursor,
            "annotations_assignment",
            (
                "id",
                "left_system",
                "state",
                "leased_until",
                "created_at",
                "updated_at",
                "rater_id",
                "item_id",
            ),
            (
                f"{assignment_base + k}\t{left[k]}\tjudged\t{stamps[k]}\t{stamps[k]}\t{stamps[k]}"
                f"\t{vote_rater[k]}\t{vote_item[k]}"
                for k in range(n_votes)
            ),
        )
        preferred = data["preferred"].tolist()
        choice = data["choice"].tolist()
        time_ms = data["time_ms"].tolist()
        has_rationale = data["has_rationale"].tolist()
        min_ms = study.min_time_ms
        counts["annotations_judgment"] = copy_rows(
            cursor,
            "annotations_judgment",
            (
                "id",
                "choice",
                "preferred",
                "left_system",
                "rationale",
                "time_ms",
                "flagged_fast",
                "created_at",
                "assignment_id",
                "item_id",
                "rater_id",
            ),
            (
                f"{judgment_base + k}\t{choices[choice[k]]}\t{codes[preferred[k]]}\t{left[k]}\t"
                f"{rationales[k % 4] if has_rationale[k] else ''}\t{time_ms[k]}\t"
                f"{'t' if time_ms[k] < min_ms else 'f'}\t{stamps[k]}\t{assignment_base + k}\t"
                f"{vote_item[k]}\t{vote_rater[k]}"
                for k in range(n_votes)
            ),
        )
        scores = (data["base_score"].tolist(), data["tuned_score"].tolist())
        counts["scoring_outputscore"] = copy_rows(
            cursor,
            "scoring_outputscore",
            (
                "system",
                "metric",
                "version",
                "value",
                "detail",
                "created_at",
                "item_id",
                "output_id",
            ),
            (
                f"{system}\t{METRIC}\t1\t{scores[k][i]!r}\t\t{created}\t{item_ids[i]}\t"
                f"{out_ids[2 * i + k]}"
                for i in range(items)
                for k, system in enumerate(("base", "tuned"))
            ),
        )
        p_tuned = data["p_tuned"].tolist()
        biased = data["position_bias"].tolist()
        counts["scoring_judgeverdict"] = copy_rows(
            cursor,
            "scoring_judgeverdict",
            (
                "judge_id",
                "template",
                "p_tuned",
                "verdict",
                "position_bias",
                "raw",
                "created_at",
                "item_id",
            ),
            (
                f"{JUDGE_ID}\tpairwise_v1\t{p_tuned[i]!r}\t"
                f"{'tuned' if p_tuned[i] > 0.55 else 'base' if p_tuned[i] < 0.45 else 'tie'}\t"
                f"{'t' if biased[i] else 'f'}\t{{}}\t{created}\t{item_ids[i]}"
                for i in range(items)
            ),
        )
        for table in (
            "annotations_item",
            "annotations_studyrater",
            "annotations_assignment",
            "annotations_judgment",
            "scoring_outputscore",
            "scoring_judgeverdict",
        ):
            cursor.execute(  # table names are the constants above
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                f"(SELECT max(id) FROM {table}))"
            )
        for table, column, target in FOREIGN_KEYS:
            cursor.execute(  # constants
                f"SELECT count(*) FROM {table} t WHERE NOT EXISTS "  # noqa: S608
                f"(SELECT 1 FROM {target} r WHERE r.id = t.{column})"
            )
            dangling = cursor.fetchone()[0]
            if dangling:
                raise RuntimeError(f"{dangling} rows of {table}.{column} miss their {target}")
    copy_s = time.perf_counter() - copy_started
    vacuum_started = time.perf_counter()
    with connection.cursor() as cursor:  # autocommit: VACUUM cannot run in a transaction
        cursor.execute("VACUUM (ANALYZE)")
    vacuum_s = time.perf_counter() - vacuum_started
    scores = np.where(data["preferred"] == 1, 1.0, np.where(data["preferred"] == 0, 0.0, 0.5))
    return {
        "generate_s": generated_s,
        "copy_s": copy_s,
        "vacuum_s": vacuum_s,
        "counts": counts,
        "win_rate": float(scores.mean()),
        "ties": float((data["preferred"] >= 2).mean()),
    }


def shape(items: int, raters: int, gold_share: float, seed: int) -> dict:
    return {"items": items, "raters": raters, "gold_share": gold_share, "seed": seed}


def study_is_loaded(url: str, wanted: dict) -> bool:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT settings -> 'bench' FROM annotations_study WHERE slug = %s", (SLUG,)
        ).fetchone()
        if row is None or row[0] != wanted:
            return False
        n = conn.execute(
            "SELECT count(*) FROM annotations_judgment j JOIN annotations_item i "
            "ON i.id = j.item_id JOIN annotations_study s ON s.id = i.study_id WHERE s.slug = %s",
            (SLUG,),
        ).fetchone()[0]
        return n == wanted["items"] * wanted["raters"]


def database_exists(server: str, name: str) -> bool:
    with common.admin_connect(server) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()


def migrate(url: str) -> None:
    # --skip-checks: system checks are not what this benchmark measures, and a model change in
    # progress elsewhere in the tree must not stop it from loading data.
    subprocess.run(
        [common.PYTHON, "manage.py", "migrate", "--noinput", "-v", "0", "--skip-checks"],
        cwd=common.REPO,
        env=common.django_env(url),
        check=True,
    )


# --- measurements (each in a fresh child process) -------------------------------------------


NESTED = {"agreement_section"}  # called inside item_bootstraps
PREFETCHED = {"judge_reads", "metric_scores", "output_lengths"}  # in another thread


def timed_section(function, name: str, sections: dict[str, list[tuple[float, float]]]):
    """Records each call's wall time and its thread's CPU time (on a shared machine the CPU
    time is the steadier figure; the database's own time shows in wall time only)."""

    def timed(*args, **kwargs):
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent = (time.perf_counter() - start, time.thread_time() - cpu)
            sections.setdefault(name, []).append(spent)

    return timed


def traced_section(function, name: str, memory: dict, overall: list[float]):
    """Records the tracemalloc peak during a (top-level) section and what it leaves allocated;
    the global peak is carried in `overall` across the per-section peak resets."""
    import tracemalloc

    def traced(*args, **kwargs):
        overall[0] = max(overall[0], tracemalloc.get_traced_memory()[1])
        tracemalloc.reset_peak()
        try:
            return function(*args, **kwargs)
        finally:
            current, peak = tracemalloc.get_traced_memory()
            overall[0] = max(overall[0], peak)
            tracemalloc.reset_peak()
            before = memory.get(name, (0.0, 0.0))[0]
            memory[name] = (max(before, peak / 2**20), current / 2**20)

    return traced


def rss_section(function, name: str, memory: dict, overall: list[float]):
    """Records the peak RSS during a (top-level) section and the RSS it leaves, by resetting
    the process's peak before and after it; the process-wide peak is carried in `overall`."""

    def measured(*args, **kwargs):
        overall[0] = max(overall[0], current_rss_mib("VmHWM"))
        reset_peak_rss()
        try:
            return function(*args, **kwargs)
        finally:
            peak = current_rss_mib("VmHWM")
            overall[0] = max(overall[0], peak)
            reset_peak_rss()
            memory[name] = (max(peak, memory.get(name, (0.0, 0.0))[0]), current_rss_mib())

    return measured


def database_backend_pid() -> int | None:
    """The PostgreSQL server process behind this process's connection, when it runs on this
    machine (its CPU time is the database's share of the report; parallel workers, if the
    planner starts any, are not counted)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    return pid if Path(f"/proc/{pid}/stat").exists() else None


def child_report(args) -> dict:
    """build_report once; mode 'time' (per-section timings), 'trace' (tracemalloc), 'profile'."""
    import gc
    import tracemalloc

    from annotations.models import Study
    from scoring import reports

    study = Study.objects.get(slug=SLUG)
    import scoring.stats.agreement  # noqa: F401  (imports are not what is measured)
    import scoring.stats.raters  # noqa: F401
    import scoring.stats.reconcile  # noqa: F401
    import scoring.stats.sequential  # noqa: F401
    import scoring.stats.winrate  # noqa: F401

    gc.collect()
    baseline = current_rss_mib()
    baseline_maxrss = mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    sections: dict[str, list[float]] = {}
    memory: dict[str, tuple[float, float]] = {}  # section: (peak during, held after) in MiB
    overall = [0.0]
    rss_by_section: dict[str, tuple[float, float]] = {}  # section: (peak RSS, RSS after) MiB
    rss_overall = [baseline_maxrss]  # the peak before the report (set-up, imports) counts too
    if args.child == "report-time":
        can_reset = reset_peak_rss()
        for name in SECTIONS:
            function = getattr(reports, name, None)
            if function is not None:
                function = timed_section(function, name, sections)
                if can_reset and name not in NESTED | PREFETCHED:
                    function = rss_section(function, name, rss_by_section, rss_overall)
                setattr(reports, name, function)
    if args.child == "report-trace":
        for name in SECTIONS:
            function = getattr(reports, name, None)
            if function is not None and name not in NESTED | PREFETCHED:
                setattr(reports, name, traced_section(function, name, memory, overall))
    options = reports.ReportOptions(n_resamples=args.resamples)
    result: dict = {"baseline_rss_mib": baseline, "baseline_maxrss_mib": baseline_maxrss}
    if args.child == "report-trace":
        tracemalloc.start()
    profiler = None
    if args.child == "report-profile":
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    backend = database_backend_pid()
    server_cpu = common.process_cpu_seconds([backend]) if backend else float("nan")
    start = time.perf_counter()
    cpu = time.process_time()
    report = reports.build_report(study=study, options=options)
    result["wall_s"] = time.perf_counter() - start
    result["cpu_s"] = time.process_time() - cpu
    if backend:
        result["server_cpu_s"] = common.process_cpu_seconds([backend]) - server_cpu
    if profiler is not None:
        import io
        import pstats

        profiler.disable()
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("cumulative").print_stats(35)
        stats.sort_stats("tottime").print_stats(25)
        result["profile"] = text.getvalue()
    if args.child == "report-trace":
        peak = max(overall[0], tracemalloc.get_traced_memory()[1])
        result["tracemalloc_peak_mib"] = peak / 2**20
        result["memory"] = memory
        tracemalloc.stop()
    result["peak_rss_mib"] = max(
        rss_overall[0], mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    )
    result["rss_by_section"] = rss_by_section
    result["sha256"] = reports.report_sha256(report)
    if args.child == "report-time":
        # GET .../report/ when the evidence has not changed: the stored build, as the view
        # serves it (its auth and routing are not included).
        from scoring.report_builds import evidence_key, report_build_store, report_cached

        report_build_store(
            study=study, options=options, report=dict(report), key=evidence_key(study), seconds=0
        )
        cached_times = []
        for _ in range(5):
            begin = time.perf_counter()
            cached = report_cached(study=Study.objects.get(pk=study.pk), options=options)
            body = cached.with_status()
            cached_times.append(time.perf_counter() - begin)
        result["cached_get_s"] = sorted(cached_times)[len(cached_times) // 2]
        result["cached_bytes"] = len(body)
        result["cached_current"] = cached.current
    result["sections"] = {name: sum(wall for wall, _ in v) for name, v in sections.items()}
    result["sections_cpu"] = {name: sum(cpu for _, cpu in v) for name, v in sections.items()}
    result["calls"] = {name: len(v) for name, v in sections.items()}
    result["summary"] = {
        "judgments": report["judgments"],
        "win_rate": report["win_rate"]["tuned"],
        "ci95": report["win_rate"]["ci95"],
        "lc_win_rate": ((report["length_adjusted_win_rate"] or {}).get("humans") or {}).get(
            "value"
        ),
        "alpha": report["agreement"]["krippendorff_alpha"],
        "alpha_ci95": report["agreement"]["krippendorff_alpha_ci95"],
        "judge_agreement": (report["judge_human"] or {}).get("agreement"),
        "human_human": (report["judge_human"] or {}).get("human_human_agreement"),
        "flagged_raters": [r["rater"] for r in report["raters"] if r["flagged"]],
        "disagreements": len(report["disagreements"]),
        "correlation": report["metric_correlations"].get(METRIC, {}).get("spearman"),
    }
    return result


def child_export(args) -> dict:
    """write_export(judgments_csv); also when the first row arrived from the database (the
    selector is wrapped, nothing else changes). Mode 'export-profile' runs it under cProfile."""
    from annotations import selectors
    from annotations.models import Study
    from scoring.exports import write_export
    from scoring.models import ExportKind

    study = Study.objects.get(slug=SLUG)
    first_row: list[float] = []
    rows_of = selectors.judgment_export_rows

    def judgment_export_rows(**kwargs):
        for row in rows_of(**kwargs):
            if not first_row:
                first_row.append(time.perf_counter())
            yield row

    selectors.judgment_export_rows = judgment_export_rows
    profiler = None
    if args.child == "export-profile":
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    baseline = current_rss_mib()
    start = time.perf_counter()
    cpu = time.process_time()
    rows = write_export(study=study, kind=ExportKind.JUDGMENTS_CSV, options={}, path=Path(args.out))
    result = {
        "wall_s": time.perf_counter() - start,
        "cpu_s": time.process_time() - cpu,
        "first_row_s": first_row[0] - start if first_row else None,
        "rows": rows,
        "baseline_rss_mib": baseline,
        "peak_rss_mib": mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
    }
    if profiler is not None:
        import io
        import pstats

        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(20)
        result["profile"] = text.getvalue()
    return result


# The same columns, formatted on the server the way the export writes them (Python's True/False,
# isoformat timestamps, empty fields unquoted), so the files can be compared line by line.
PEER_SQL = """
COPY (
    SELECT i.external_id AS item_id, u.username AS rater,
           (SELECT nullif(m.participant_id, '') FROM annotations_studyrater m
            WHERE m.study_id = i.study_id AND m.rater_id = j.rater_id) AS participant_id,
           j.preferred,
           CASE j.choice WHEN 'left' THEN 'response_1' WHEN 'right' THEN 'response_2'
                ELSE j.choice END AS choice,
           j.left_system AS response_1_system,
           CASE j.left_system WHEN 'base' THEN 'tuned' ELSE 'base' END AS response_2_system,
           j.time_ms,
           CASE WHEN j.flagged_fast THEN 'True' ELSE 'False' END AS flagged_fast,
           CASE WHEN i.is_gold THEN 'True' ELSE 'False' END AS is_gold,
           nullif(j.rationale, '') AS rationale,
           to_char(j.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
           || CASE WHEN to_char(j.created_at, 'US') = '000000' THEN ''
                   ELSE to_char(j.created_at, '.US') END
           || '+00:00' AS created_at
    FROM annotations_judgment j
    JOIN annotations_item i ON i.id = j.item_id
    JOIN auth_user u ON u.id = j.rater_id
    WHERE i.study_id = (SELECT id FROM annotations_study WHERE slug = %s)
    ORDER BY j.id
) TO STDOUT WITH (FORMAT csv, HEADER)
"""


def child_peer(args) -> dict:
    import psycopg

    baseline = current_rss_mib()
    start = time.perf_counter()
    newlines = 0
    with (
        psycopg.connect(args.url) as conn,
        open(args.out, "wb") as handle,
        conn.cursor().copy(PEER_SQL, (SLUG,)) as copy,
    ):
        for block in copy:
            handle.write(block)
            newlines += bytes(block).count(b"\n")
    return {
        "wall_s": time.perf_counter() - start,
        "rows": newlines - 1,  # header; no value holds a newline
        "baseline_rss_mib": baseline,
        "peak_rss_mib": mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
    }


def child_load(args) -> dict:
    return load(items=args.items, raters=args.raters, gold_share=args.gold_share, seed=args.seed)


def study_shape(args) -> dict[str, object]:
    """The options that name the generated study, passed on to every child."""
    return {
        "items": args.items,
        "raters": args.raters,
        "gold-share": args.gold_share,
        "seed": args.seed,
    }


def run_child(args, mode: str, url: str, **extra: str) -> dict:
    options = {"resamples": args.resamples, **study_shape(args), **extra}
    return common.run_child(Path(__file__).resolve(), mode, url, options)


def run_command_export(url: str, out: Path) -> dict:
    """manage.py export_judgments in its own process; peak RSS of that process from wait4."""
    command = [
        common.PYTHON,
        "manage.py",
        "export_judgments",
        SLUG,
        "--format",
        "csv",
        "--out",
        str(out),
        "--skip-checks",
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(
        command,
        cwd=common.REPO,
        env=common.django_env(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    if proc.returncode != 0:
        sys.stderr.write((stdout + stderr).decode(errors="replace"))
        raise SystemExit(f"export_judgments failed with exit status {proc.returncode}")
    rows = sum(1 for _ in out.open("rb")) - 1
    return {"wall_s": wall, "rows": rows, "peak_rss_mib": mib(usage.ru_maxrss), "command": command}


def file_digest(path: Path, *, crlf_to_lf: bool = False) -> str:
    """sha256 of a file; with `crlf_to_lf`, of its text with CSV line ends as LF (Python's csv
    module ends rows with CRLF, PostgreSQL with LF; no exported value holds a line break)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for line in handle if crlf_to_lf else iter(lambda: handle.read(1 << 20), b""):
            digest.update(line[:-2] + b"\n" if crlf_to_lf and line.endswith(b"\r\n") else line)
    return digest.hexdigest()


# --- main -----------------------------------------------------------------------------------


def fmt(ci: list[float] | None) -> str:
    return "none" if ci is None else f"[{ci[0]:.4f}, {ci[1]:.4f}]"


def print_report_results(timed: dict, traced: dict, args) -> None:
    s = timed["summary"]
    server = timed.get("server_cpu_s")
    print(
        f"build_report(n_resamples={args.resamples}): {timed['wall_s']:.2f} s wall, "
        f"{timed['cpu_s']:.2f} s CPU in the Python process"
        + (f" + {server:.2f} s CPU in its PostgreSQL backend" if server is not None else "")
        + f"; {s['judgments']:,} non-gold judgments in the report"
    )
    grown = timed["peak_rss_mib"] - timed["baseline_rss_mib"]
    print(
        f"  peak RSS {timed['peak_rss_mib']:.0f} MiB (process after Django set-up and imports: "
        f"{timed['baseline_rss_mib']:.0f} MiB, so +{grown:.0f} MiB for the report); "
        f"tracemalloc peak {traced['tracemalloc_peak_mib']:.0f} MiB (separate run: "
        f"{traced['wall_s']:.1f} s under tracemalloc, RSS {traced['peak_rss_mib']:.0f} MiB)"
    )
    if "cached_get_s" in timed:
        print(
            f"  GET .../report/ from the stored build (evidence unchanged): "
            f"{1000 * timed['cached_get_s']:.0f} ms median of 5 for "
            f"{timed['cached_bytes'] / 2**20:.1f} MiB of JSON (target < 200 ms; "
            f"current: {timed['cached_current']})"
        )
    total = timed["wall_s"]
    parts = sorted(timed["sections"].items(), key=lambda kv: -kv[1])
    cpu = timed.get("sections_cpu", {})
    print(
        "  time by section, wall and the thread's CPU (agreement_section is inside "
        f"item_bootstraps; {', '.join(sorted(PREFETCHED))} run in the prefetch thread, "
        "overlapping the others):"
    )
    for name, seconds in parts:
        calls = timed["calls"][name]
        print(
            f"    {name:27s} {seconds:7.2f} s {100 * seconds / total:5.1f}%  "
            f"CPU {cpu.get(name, float('nan')):5.2f} s"
            + (f"  ({calls} calls)" if calls > 1 else "")
        )
    if timed.get("rss_by_section"):
        print("  peak RSS by section (MiB, whole process, during it / after it):")
        by_peak = sorted(timed["rss_by_section"].items(), key=lambda kv: -kv[1][0])
        for name, (peak, after) in by_peak:
            print(f"    {name:27s} {peak:6.0f} / {after:4.0f}")
    print(
        f"  report: tuned win rate {s['win_rate']:.4f} CI {fmt(s['ci95'])}, "
        f"LC {s['lc_win_rate']:.4f}; alpha {s['alpha']:.4f} CI {fmt(s['alpha_ci95'])}; "
        f"judge-human {s['judge_agreement']:.4f}, "
        f"human-human {s['human_human']:.4f}; spearman({METRIC}) {s['correlation']:.4f}; "
        f"flagged raters {s['flagged_raters']}; {s['disagreements']:,} disagreements"
    )
    print(f"  report_sha256 {timed['sha256']} (trace run: {traced['sha256'][:12]}...)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default=common.DEFAULT_PG, help="PostgreSQL server URL")
    parser.add_argument("--db", default="bench_report", help="database name (must start bench_)")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--raters", type=int, default=10)
    parser.add_argument("--gold-share", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=20_251_125)
    parser.add_argument("--resamples", type=int, default=1_000)
    parser.add_argument("--reload", action="store_true", help="drop and reload the database")
    parser.add_argument("--profile", action="store_true", help="add a cProfile run of the report")
    parser.add_argument("--skip-report", action="store_true")
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="300 items x 5 raters, every measurement, on <db>_smoke (loaded fresh, dropped)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke and not args.child:
        args.items, args.raters, args.resamples = 300, 5, 50
        args.reload, args.profile, args.skip_report, args.skip_export = True, True, False, False
        args.db = common.smoke_name(args.db)
        common.drop_at_exit(args.pg, args.db)

    if args.child:
        if args.child != "peer":
            common.django_setup(args.url)
        handlers = {
            "peer": child_peer,
            "export": child_export,
            "export-profile": child_export,
            "load": child_load,
        }
        handler = handlers.get(args.child, child_report)
        print("RESULT " + json.dumps(handler(args)))
        return

    common.check_bench_name(args.db)
    url = common.database_url(args.pg, args.db)
    wanted = shape(args.items, args.raters, args.gold_share, args.seed)
    print(f"reproduce: {common.reproduce_line()}")
    print(
        f"machine: {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; "
        f"python {sys.version.split()[0]}; database {args.db}"
    )
    loaded = not args.reload and database_exists(args.pg, args.db) and study_is_loaded(url, wanted)
    if loaded:
        migrate(url)  # no-op unless a migration was added since the load
        print(f"data: study {SLUG} already loaded ({wanted}); --reload to rebuild")
    else:
        common.database_recreate(args.pg, args.db)
        started = time.perf_counter()
        migrate(url)
        print(f"migrated fresh database {args.db} in {time.perf_counter() - started:.1f} s")
        # In a child too: Linux carries a process's peak RSS over fork + exec into its children's
        # ru_maxrss, so this process must stay small for the children's figures to be their own.
        info = run_child(args, "load", url)
        print(
            f"loaded study {SLUG} with COPY in {info['copy_s']:.1f} s "
            f"(+ {info['generate_s']:.1f} s numpy generation, "
            f"{info['vacuum_s']:.1f} s VACUUM ANALYZE); rows: "
            + ", ".join(f"{t} {n:,}" for t, n in info["counts"].items())
        )
        print(
            f"  generated votes: tuned win rate {info['win_rate']:.4f} (ties as half), "
            f"ties+both-bad {info['ties']:.1%}"
        )
    print(
        f"shape: {args.items:,} items ({args.gold_share:.0%} gold) x {args.raters} raters = "
        f"{args.items * args.raters:,} judgments (every rater votes on every item)"
    )

    parent = mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    print(
        f"this driver process: peak RSS {parent:.0f} MiB (a floor under each child's ru_maxrss, "
        "which Linux carries over fork + exec)"
    )

    if not args.skip_report:
        print(f"\n=== report (fresh process per measurement, n_resamples={args.resamples})")
        timed = run_child(args, "report-time", url)
        traced = run_child(args, "report-trace", url)
        print_report_results(timed, traced, args)
        if args.profile:
            profiled = run_child(args, "report-profile", url)
            print(f"\n--- cProfile of build_report ({profiled['wall_s']:.1f} s under the profiler)")
            print(profiled["profile"])

    if not args.skip_export:
        print("\n=== judgments CSV export (fresh process each)")
        with tempfile.TemporaryDirectory(prefix="bench_report_") as folder:
            paths = {name: Path(folder) / f"{name}.csv" for name in ("export", "command", "peer")}
            export = run_child(args, "export", url, out=str(paths["export"]))
            command = run_command_export(url, paths["command"])
            peer = run_child(args, "peer", url, out=str(paths["peer"]))
            sizes = {name: path.stat().st_size for name, path in paths.items()}
            same = file_digest(paths["export"]) == file_digest(paths["command"])
            as_peer = file_digest(paths["export"], crlf_to_lf=True) == file_digest(paths["peer"])
        peer_rate = peer["rows"] / peer["wall_s"]
        for name, label, what, r in (
            ("export", "write_export", "write_export(kind=judgments_csv) in-process", export),
            (
                "command",
                "command",
                "manage.py export_judgments --format csv (wall incl. start-up)",
                command,
            ),
            ("peer", "peer", "psycopg COPY (SELECT ...) TO STDOUT -> file, no Django", peer),
        ):
            rate = r["rows"] / r["wall_s"]
            verdict = ""
            if name != "peer":
                met = r["peak_rss_mib"] < RSS_TARGET_MIB
                verdict = f"; RSS < {RSS_TARGET_MIB} MiB {'MET' if met else 'MISSED'}"
            print(
                f"  {label:12s} {r['rows']:>9,} rows in {r['wall_s']:6.2f} s = {rate:9,.0f} rows/s"
                f" ({rate / peer_rate:.2f}x peer), peak RSS {r['peak_rss_mib']:4.0f} MiB, "
                f"{sizes[name] / 2**20:.0f} MiB file{verdict}"
            )
            print(f"               {what}")
        print(
            f"  write_export: first row after {export['first_row_s']:.2f} s, "
            f"{export['cpu_s']:.1f} s CPU in the Python process "
            f"(process after Django set-up: {export['baseline_rss_mib']:.0f} MiB)"
        )
        print(
            f"  write_export and export_judgments files identical: {same}; the peer's file has the "
            f"same content (CRLF vs LF line ends aside): {as_peer}"
        )
        if args.profile:
            with tempfile.TemporaryDirectory(prefix="bench_report_") as folder:
                profiled = run_child(args, "export-profile", url, out=f"{folder}/export.csv")
            print(f"\n--- cProfile of write_export ({profiled['wall_s']:.1f} s under the profiler)")
            print(profiled["profile"])
        if args.smoke and not (same and as_peer):
            raise SystemExit("FAIL: the export files differ (see above)")


if __name__ == "__main__":
    main()
